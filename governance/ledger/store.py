"""Ledger storage on SQLAlchemy Core: SQLite (default) or PostgreSQL.

Append-only is enforced by the database as well as the code: triggers reject UPDATE
and DELETE on entries, tree nodes and checkpoints. Writers serialise on a lock
(SQLite `BEGIN IMMEDIATE`, PostgreSQL advisory lock) so concurrent processes keep
the sequence gapless and the tree consistent.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DatabaseError, OperationalError, ProgrammingError

from governance.entry_types import stored_names
from governance.errors import UsageError, VerificationError
from governance.ledger.entry import Entry
from governance.ledger.merkle import NodeKey
from governance.verify.leaf import as_bytes
from governance.verify.merkle import hash_children

SCHEMA_VERSION = 2  # written by new ledgers
SUPPORTED_SCHEMA_VERSIONS = ("1", "2")
# Lowest tree level kept in fedgov_tree_nodes, by schema version. Version 2 leaves out levels
# 1..3 (7 of every 8 interior nodes); they are rehashed from at most 8 stored leaf hashes when read.
MIN_STORED_LEVEL = {"1": 1, "2": 4}
PAGE_SIZE = 16384  # bytes per page of a new SQLite ledger (set before its first table)
PG_LOCK_KEY = 0x66656467  # "fedg": the advisory lock all ledger writers take

metadata = sa.MetaData()
meta_table = sa.Table(
    "fedgov_meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
entries_table = sa.Table(
    "fedgov_entries", metadata,
    # On SQLite `INTEGER PRIMARY KEY` makes seq the rowid itself: one B-tree fewer to update per append.
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=False),
    sa.Column("entry_type", sa.String(64), nullable=False),
    sa.Column("timestamp", sa.String(32), nullable=False),
    sa.Column("run_id", sa.String(128), nullable=False),
    sa.Column("round", sa.Integer, nullable=True),
    sa.Column("node_id", sa.String(128), nullable=False),
    sa.Column("model_hash", sa.String(128), nullable=False),
    sa.Column("config_hash", sa.String(128), nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("leaf_hash", sa.LargeBinary, nullable=False),
)
# One secondary index: each index costs every append a B-tree insert (~0.7-1 µs an entry on SQLite),
# while queries are rare. A query that names no type seeks it once per stored type (`_sought_types`);
# one that names only a node scans it (docs/benchmarks.md, "Fifth pass"). Ledgers made before
# keep their three indexes, (run_id, round, node_id), (node_id) and (entry_type), and plain SQL.
TYPE_LED_INDEX = "ix_fedgov_entries_type_run_round_node"
sa.Index(TYPE_LED_INDEX, entries_table.c.entry_type, entries_table.c.run_id, entries_table.c.round,
         entries_table.c.node_id)
SOUGHT_TYPES_MAX = 256  # stored types beyond which a query naming none filters the rows instead
# The distinct entry types by a loose index scan: one index seek per type, not a scan of every entry.
STORED_TYPES_SQL = ("WITH RECURSIVE t(v) AS (SELECT MIN(entry_type) FROM fedgov_entries UNION ALL "
                    "SELECT (SELECT MIN(entry_type) FROM fedgov_entries WHERE entry_type > t.v) FROM t "
                    "WHERE t.v IS NOT NULL) SELECT v FROM t WHERE v IS NOT NULL")
nodes_table = sa.Table(
    "fedgov_tree_nodes", metadata,
    sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary, nullable=False),
    sqlite_with_rowid=False,  # rows live in the (level, idx) key B-tree itself: no separate rowid tree
)
checkpoints_table = sa.Table(
    "fedgov_checkpoints", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("tree_size", sa.BigInteger, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("consistency_proof", sa.Text, nullable=False),
    sa.Column("created", sa.String(32), nullable=False),
)
data_keys_table = sa.Table(
    "fedgov_data_keys", metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("scope", sa.Text, nullable=False, index=True),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=True),
    sa.Column("kek_id", sa.String(16), nullable=False),
    sa.Column("created", sa.String(32), nullable=False),
    sa.Column("destroyed_at", sa.String(32), nullable=True),
    sa.Column("destroyed_by", sa.Text, nullable=True),
)
LEDGER_TABLES = ("fedgov_meta", "fedgov_data_keys", "fedgov_checkpoints", "fedgov_entries", "fedgov_tree_nodes")

# Roles and identities (docs/ledger-format.md §4, §7): made by the first `fedgov identity add`, absent before.
# A separate MetaData, so `create_schema` makes a new ledger exactly as before.
role_metadata = sa.MetaData()
identities_table = sa.Table(
    "fedgov_identities", role_metadata,
    sa.Column("fingerprint", sa.String(32), primary_key=True),
    sa.Column("document", sa.Text, nullable=False),  # JCS of the public identity document
    sa.Column("signature", sa.LargeBinary, nullable=False),  # the ledger signing key's Ed25519 signature
    sa.Column("seq", sa.BigInteger, nullable=False),  # its identity.registered entry
    sa.Column("created", sa.String(32), nullable=False),
)
sealed_keys_table = sa.Table(
    "fedgov_sealed_keys", role_metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("scope", sa.Text, nullable=False, index=True),
    sa.Column("created", sa.String(32), nullable=False),
    sa.Column("destroyed_at", sa.String(32), nullable=True),
    sa.Column("destroyed_by", sa.Text, nullable=True),
)
grants_table = sa.Table(
    "fedgov_key_grants", role_metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("recipient", sa.String(32), primary_key=True),  # an identity's fingerprint
    sa.Column("wrapped", sa.LargeBinary, nullable=True),  # NULL once shredded
    sa.Column("created", sa.String(32), nullable=False),
)
batch_auth_table = sa.Table(
    "fedgov_batch_auth", role_metadata,
    sa.Column("first_seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("writer", sa.String(32), nullable=False),  # "ledger" (HMAC) or an identity's fingerprint (Ed25519)
    sa.Column("tag", sa.LargeBinary, nullable=False),
)
ROLE_TABLES = ("fedgov_identities", "fedgov_sealed_keys", "fedgov_key_grants", "fedgov_batch_auth")
ROLE_APPEND_ONLY = ("fedgov_identities", "fedgov_batch_auth")
ALL_TABLES = LEDGER_TABLES + ROLE_TABLES
ENTRY_COLUMNS = ("seq", "entry_type", "timestamp", "run_id", "round", "node_id", "model_hash", "config_hash",
                 "key_id", "ciphertext", "leaf_hash")
APPEND_ONLY = ("fedgov_entries", "fedgov_tree_nodes", "fedgov_checkpoints")

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION fedgov_reject_change() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'fedgov ledger is append-only: %% on %% rejected', TG_OP, TG_TABLE_NAME;
END $$ LANGUAGE plpgsql
"""


# The hashes a proof needs on PostgreSQL: leaf hashes by seq, tree nodes by (level, idx), keys as arrays.
_PG_NODES = ("SELECT 0, seq, leaf_hash FROM fedgov_entries WHERE seq = ANY(%s::bigint[]) UNION ALL "
             "SELECT n.level, n.idx, n.hash FROM unnest(%s::smallint[], %s::bigint[]) AS k(level, idx) "
             "JOIN fedgov_tree_nodes n ON n.level = k.level AND n.idx = k.idx")


def _pg_array(values: Sequence[int]) -> str:
    """A PostgreSQL array literal of integers, e.g. `{1,2,3}`."""
    return "{" + ",".join(map(str, values)) + "}"


class StoreError(UsageError):
    """The ledger database is missing, unreadable, or not a supported fedgov ledger."""


class MetaMissingError(VerificationError):
    """A meta row every fedgov ledger has is gone: the table was edited."""


class WriterBusyError(StoreError):
    """Another process held the ledger's writer lock for longer than the caller would wait."""


class UnsupportedSchemaError(StoreError):
    """The database schema version is not one this fedgov understands."""


REQUIRED_META = ("ledger_id", "origin", "public_key", "schema_version")


def display_url(url: str) -> str:
    """A database URL for messages: the password hidden, in the user part and in the query."""
    parts = make_url(url)
    query = {k: ("***" if k.lower() == "password" else v) for k, v in parts.query.items()}
    return parts.set(query=query).render_as_string(hide_password=True)


def _is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _make_engine(url: str, readonly: bool = False) -> Engine:
    if _is_sqlite(url):
        uri = _readonly_uri(Path(make_url(url).database or "")) if readonly else None
        if uri is not None:
            engine = sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, timeout=120,
                                                                                 check_same_thread=False))
        else:
            engine = sa.create_engine(url, connect_args={"timeout": 120})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout = 120000")
            if readonly:
                cur.execute("PRAGMA query_only = ON")  # this connection changes nothing
            else:
                # A new ledger's pages: 16 KiB, not 4. A 10,000-entry commit writes a quarter of the WAL
                # frames, so an append costs ~5 % less (docs/benchmarks.md); an existing file keeps its own.
                cur.execute(f"PRAGMA page_size = {PAGE_SIZE}")
                cur.execute("PRAGMA journal_mode = WAL")
                cur.execute("PRAGMA synchronous = FULL")  # durable when append() returns
                cur.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed
            cur.execute("PRAGMA cache_size = -65536")  # 64 MiB: keeps index pages hot during bulk appends
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get("fedgov_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    return sa.create_engine(url, pool_pre_ping=False)


def _readonly_uri(path: Path) -> str | None:
    """How to open `path` read-only: None for a plain connection with `query_only`, else a URI.

    Where the file and its directory are writable, a plain connection (with `query_only`)
    shares the WAL with writers and, closing last, tidies it away as a writer would. On a
    read-only file or mount: `mode=ro` reads a WAL database when its -shm file is there;
    with neither -shm nor WAL content (a ledger copied after its last writer closed), only
    `immutable=1` opens it, and that is safe exactly because nothing there can change.
    """
    from urllib.parse import quote

    if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        return None
    base = "file:" + quote(str(path))
    wal = path.with_name(path.name + "-wal")
    shm = path.with_name(path.name + "-shm")
    if not os.access(path.parent, os.W_OK) and not shm.exists():
        if wal.exists() and wal.stat().st_size > 0:
            raise StoreError(f"cannot read {path} on a read-only mount: it has a write-ahead log ({wal.name}) "
                             f"but no {shm.name}; copy the workspace with both files, or mount it writable")
        return base + "?immutable=1"
    return base + "?mode=ro"


class LedgerStore:
    """Rows in, rows out. Knows SQL and locking, nothing about keys or proofs."""

    def __init__(self, url: str, engine: Engine, readonly: bool = False) -> None:
        self.url = url
        self.engine = engine
        self.readonly = readonly
        self.is_sqlite = _is_sqlite(url)
        self.meta: dict[str, str] = {}
        self.min_stored_level = 1  # set from the schema version on create/open
        self._has_role_tables = False  # once seen, never gone
        self._copy_types: dict[tuple[str, tuple[str, ...]], list[int]] = {}  # PostgreSQL binary COPY, per table
        self._type_led_index: bool | None = None  # read once: which index layout the entries have

    def _set_meta(self, meta: dict[str, str]) -> None:
        self.meta = meta
        self.min_stored_level = MIN_STORED_LEVEL.get(meta.get("schema_version", ""), 1)

    @classmethod
    def connect_new(cls, url: str) -> LedgerStore:
        """An engine for a database that will receive a new ledger (`create_schema`, in a write transaction).

        A new SQLite file is created 0600 first: SQLite gives its -wal and -shm files the same mode.
        """
        if _is_sqlite(url):
            from governance.private_files import create_private_file, make_private_dir

            path = Path(make_url(url).database or "")
            if not path.parent.exists():
                make_private_dir(path.parent)
            create_private_file(path)
        return cls(url, _make_engine(url))

    def create_schema(self, conn: Connection, meta: dict[str, str], schema_version: str | None = None) -> None:
        """Create tables, triggers and meta rows in an empty database, inside the caller's transaction.

        A new ledger gets the current schema version; a moved one (`move.py`) keeps its own.
        """
        if sa.inspect(conn).has_table("fedgov_meta"):
            raise StoreError("the database already holds a fedgov ledger")
        schema_version = str(SCHEMA_VERSION) if schema_version is None else schema_version
        if schema_version not in SUPPORTED_SCHEMA_VERSIONS:
            raise UnsupportedSchemaError(f"ledger schema version {schema_version} is not supported")
        metadata.create_all(conn)
        for table in APPEND_ONLY:
            self._protect(conn, table)
        rows = {**meta, "schema_version": schema_version}
        conn.execute(meta_table.insert(), [{"key": k, "value": v} for k, v in rows.items()])
        self._set_meta(rows)

    def _protect(self, conn: Connection, table: str) -> None:
        if self.is_sqlite:
            for op in ("UPDATE", "DELETE"):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'fedgov ledger is append-only: {op} on {table} rejected'); END"
                )
        else:
            conn.exec_driver_sql(PG_FUNCTION)
            conn.exec_driver_sql(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                                 "FOR EACH ROW EXECUTE FUNCTION fedgov_reject_change()")
            conn.exec_driver_sql(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                                 "FOR EACH STATEMENT EXECUTE FUNCTION fedgov_reject_change()")
            conn.exec_driver_sql(f"REVOKE TRUNCATE, UPDATE, DELETE ON {table} FROM PUBLIC")

    @classmethod
    def open(cls, url: str, readonly: bool = False) -> LedgerStore:
        """Open an existing ledger; one clear StoreError if it is missing, corrupt or unsupported.

        `readonly` opens SQLite with `mode=ro` (or `immutable=1` on a read-only mount) and
        PostgreSQL in read-only transactions: verification and listings never write.
        """
        if _is_sqlite(url):
            path = Path(make_url(url).database or "")
            if not path.is_file():
                raise StoreError(f"no ledger database at {path}")
        store = cls(url, _make_engine(url, readonly), readonly)
        try:
            with store.read() as conn:
                if not sa.inspect(conn).has_table("fedgov_meta"):
                    raise StoreError(f"{store.display_url} is not a fedgov ledger (no meta table)")
                store._set_meta({r.key: r.value for r in conn.execute(sa.select(meta_table))})
        except (DatabaseError, OperationalError, ProgrammingError) as err:
            store.engine.dispose()
            raise StoreError(f"cannot read ledger database {store.display_url}: it is corrupt or unreachable "
                             f"({type(err.orig).__name__})") from err
        missing = [k for k in REQUIRED_META if not isinstance(store.meta.get(k), str)]
        if missing:
            store.engine.dispose()
            raise MetaMissingError(f"the ledger's meta table lacks {', '.join(missing)} (edited by hand?)")
        version = store.meta.get("schema_version")
        if version not in SUPPORTED_SCHEMA_VERSIONS:
            store.engine.dispose()
            raise UnsupportedSchemaError(f"ledger schema version {version} is not supported "
                                         f"(this fedgov reads versions {', '.join(SUPPORTED_SCHEMA_VERSIONS)})")
        return store

    @property
    def display_url(self) -> str:
        """The URL with any password hidden, for messages."""
        return display_url(self.url)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def write(self, wait_s: float | None = None) -> Iterator[Connection]:
        """A transaction holding the ledger's writer lock; commits on exit.

        `wait_s` bounds the wait for the lock (else SQLite's busy timeout, or for ever on
        PostgreSQL): WriterBusyError when another process holds it that long.
        """
        if self.readonly:
            raise UsageError("this ledger was opened read-only")
        with self.engine.connect() as conn:
            conn = conn.execution_options(fedgov_write=True)
            if wait_s is not None and self.is_sqlite:  # BEGIN IMMEDIATE waits this long for other writers
                conn.connection.driver_connection.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
            try:
                transaction = conn.begin()
                if not self.is_sqlite:
                    if wait_s is not None:
                        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(wait_s * 1000)}")
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
                    if wait_s is not None:
                        conn.exec_driver_sql("SET LOCAL lock_timeout = DEFAULT")
                elif wait_s is not None:
                    conn.connection.driver_connection.execute("PRAGMA busy_timeout = 120000")
            except OperationalError as err:
                if wait_s is None:
                    raise
                raise WriterBusyError(f"another process has held the writer lock of {self.display_url} for "
                                      f"{wait_s:g} s (a run or a command writing): try again when it has finished") \
                    from err
            with transaction:
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (one consistent snapshot)."""
        with self.engine.connect() as conn:
            if not self.is_sqlite:  # read-only transactions only for a read-only store: SQLAlchemy resets the
                # session to READ WRITE when it returns the connection, which a writer's pool need not see
                conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=self.readonly)
            with conn.begin():
                yield conn

    @contextmanager
    def tree_read(self) -> Iterator[Connection]:
        """A connection for reading the tree at a known size: proofs and roots.

        Entries and the nodes of complete subtrees never change once committed (one
        transaction writes both), so on PostgreSQL no transaction is needed around them:
        each query runs on its own snapshot in autocommit, one round trip instead of BEGIN,
        query, COMMIT. On SQLite it is `read()`, whose BEGIN costs no round trip.
        """
        if self.is_sqlite:
            with self.read() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    # -- entries and tree -------------------------------------------------------------

    def size(self, conn: Connection) -> int:
        """Number of entries, taken as max(seq) + 1 (verification checks there are no gaps)."""
        top = conn.execute(sa.select(sa.func.max(entries_table.c.seq))).scalar()
        return 0 if top is None else int(top) + 1

    def _cursor(self, conn: Connection) -> Any:
        """The driver's own cursor, inside the SQLAlchemy transaction: no per-row parameter processing."""
        return conn.connection.driver_connection.cursor()

    def insert_entries(self, conn: Connection, rows: Iterable[tuple]) -> None:
        """Insert entry rows given as tuples in ENTRY_COLUMNS order, in one driver call.

        `rows` may be an iterator (read once): a `zip` of columns then builds no tuple per row.
        """
        self._bulk_insert(conn, "fedgov_entries", ENTRY_COLUMNS, rows, binary=True)

    def insert_nodes(self, conn: Connection, rows: Sequence[tuple[int, int, bytes]]) -> None:
        """Insert (level, idx, hash) tree nodes in one driver call (callers pass only levels >= min_stored_level)."""
        self._bulk_insert(conn, "fedgov_tree_nodes", ("level", "idx", "hash"), rows, binary=True)

    def _bulk_insert(self, conn: Connection, table: str, columns: Sequence[str], rows: Iterable[tuple],
                     binary: bool = False) -> None:
        """`binary` (PostgreSQL): COPY in binary form, for rows this process made with the columns' own types.

        Binary COPY sends bytea as raw bytes, not hex text, and the server parses no text: on the
        append path ~0.4 µs less client CPU per entry. Rows read back from a database (a move)
        may hold hand-edited values of other types, so they keep the text form.
        """
        if isinstance(rows, Sequence) and not rows:
            return
        cur = self._cursor(conn)
        try:
            if self.is_sqlite:
                cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                                f"({', '.join('?' * len(columns))})", rows)
            elif binary:
                types = self._column_types(cur, table, columns)
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(types)
                    for row in rows:
                        copy.write_row(row)
            else:  # COPY: PostgreSQL's bulk path, an order of magnitude above row INSERTs
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        finally:
            cur.close()

    def _column_types(self, cur: Any, table: str, columns: Sequence[str]) -> list[int]:
        """The type oids of `columns` as the database declares them (binary COPY needs them exactly), read once."""
        key = (table, tuple(columns))
        if key not in self._copy_types:
            cur.execute("SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                        "AND NOT attisdropped", (table,))
            oids = {name: int(oid) for name, oid in cur.fetchall()}
            missing = [c for c in columns if c not in oids]
            if missing:
                raise StoreError(f"table {table} has no column {missing[0]}: the schema was edited")
            self._copy_types[key] = [oids[c] for c in columns]
        return self._copy_types[key]

    def fetch_nodes(self, conn: Connection, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        """Stored hashes of perfect subtrees in one indexed query; level 0 comes from the entries' leaf hashes."""
        low = self.min_stored_level
        # Unstored low levels (schema 2): the aligned run of leaves under the node, rehashed below.
        derived = sorted({(lvl, idx) for lvl, idx in keys if 0 < lvl < low})
        leaves = sorted({idx for lvl, idx in keys if lvl == 0}
                        | {i for lvl, idx in derived for i in range(idx << lvl, (idx + 1) << lvl)})
        inner = sorted({(lvl, idx) for lvl, idx in keys if lvl >= low})
        parts: list[str] = []
        params: list[Any] = []
        if not self.is_sqlite:  # one query text whatever the keys: psycopg parses it once, the server plans it once
            parts = [_PG_NODES]  # arrays as literals: psycopg's list dumper costs ~0.2 ms a proof
            params = [_pg_array(leaves), _pg_array([lvl for lvl, _ in inner]), _pg_array([idx for _, idx in inner])]
        if self.is_sqlite and leaves:
            parts.append(f"SELECT 0, seq, leaf_hash FROM fedgov_entries WHERE seq IN ({', '.join('?' * len(leaves))})")
            params.extend(leaves)
        if self.is_sqlite and inner:  # OR of PK lookups: SQLite plans a row-value IN as a scan
            parts.append("SELECT level, idx, hash FROM fedgov_tree_nodes WHERE "
                         + " OR ".join(["(level = ? AND idx = ?)"] * len(inner)))
            for lvl, idx in inner:
                params.extend((lvl, idx))
        found: dict[NodeKey, bytes] = {}
        if leaves or inner:
            cur = self._cursor(conn)
            try:
                cur.execute(" UNION ALL ".join(parts), params)
                rows = cur.fetchall()
            finally:
                cur.close()
            for lv, ix, h in rows:
                if not isinstance(h, (bytes, memoryview)) or len(h) != 32:
                    raise StoreError(f"stored tree node (level {lv}, idx {ix}) is not a 32-byte hash: run "
                                     "`fedgov audit verify`, then `fedgov audit repair-cache`")
                found[(int(lv), int(ix))] = bytes(h)
        for lvl, idx in derived:
            run = [found.get((0, i)) for i in range(idx << lvl, (idx + 1) << lvl)]
            if None in run:
                continue  # reported as missing below
            while len(run) > 1:
                run = [hash_children(a, b) for a, b in zip(run[::2], run[1::2])]
            found[(lvl, idx)] = run[0]
        missing = [k for k in keys if k not in found]
        if missing:
            raise StoreError(f"stored tree is missing node {missing[0]}: run `fedgov audit verify`")
        return found

    def query(self, conn: Connection, entry_type: str | None = None, run_id: str | None = None,
              round: int | None = None, node_id: str | None = None, seqs: Sequence[int] | None = None,
              limit: int | None = None, entry_types: Sequence[str] | None = None) -> list[Entry]:
        q = self._matching(conn, sa.select(entries_table).order_by(entries_table.c.seq), entry_type, run_id, round,
                           node_id, seqs, entry_types)
        if limit is not None:
            q = q.limit(limit)
        return [row_to_entry(r) for r in conn.execute(q)]

    def _matching(self, conn: Connection, q: Any, entry_type: str | None = None, run_id: str | None = None,
                  round: int | None = None, node_id: str | None = None, seqs: Sequence[int] | None = None,
                  entry_types: Sequence[str] | None = None) -> Any:
        """`q` restricted to the entries matching every given field."""
        c = entries_table.c
        if entry_type is not None:  # a dotted type also finds its pre-0.2 spelling
            names = stored_names(entry_type)
            q = q.where(c.entry_type == names[0] if len(names) == 1 else c.entry_type.in_(names))
        if entry_types is not None:  # exactly these stored names
            q = q.where(c.entry_type.in_(list(entry_types)))
        elif entry_type is None and seqs is None and (run_id, round, node_id) != (None, None, None):
            sought = self._sought_types(conn)
            if sought is not None:  # every stored type, so the type-led index is sought, not scanned
                q = q.where(c.entry_type.in_(sought))
        for column, value in ((c.run_id, run_id), (c.round, round), (c.node_id, node_id)):
            if value is not None:
                q = q.where(column == value)
        if seqs is not None:
            q = q.where(c.seq.in_(list(seqs)))
        return q

    def _sought_types(self, conn: Connection) -> list[str] | None:
        """Every stored entry type, for a query naming none to seek the type-led index once per type.

        None (filter the rows instead) where naming them could miss a row or cost more than it saves:
        an older index layout, more than SOUGHT_TYPES_MAX types, or a hand-edited type that is not
        text, is NULL, or (SQLite) is not UTF-8 and so cannot be read back.
        """
        if not self._type_led(conn):
            return None
        try:
            types = self.stored_types(conn, limit=SOUGHT_TYPES_MAX + 1)
        except OperationalError:
            if not self.is_sqlite:
                raise
            return None
        if len(types) > SOUGHT_TYPES_MAX or not all(type(t) is str for t in types):
            return None
        c = entries_table.c
        if conn.execute(sa.select(c.seq).where(c.entry_type.is_(None)).limit(1)).first() is not None:
            return None
        return types

    def entries_between(self, conn: Connection, start: int, end: int) -> list[tuple]:
        """Entry rows with start <= seq < end, in seq order, as tuples in ENTRY_COLUMNS order."""
        mark = "?" if self.is_sqlite else "%s"
        cur = self._cursor(conn)
        try:
            cur.execute(f"SELECT {', '.join(ENTRY_COLUMNS)} FROM fedgov_entries WHERE seq >= {mark} AND seq < {mark} "
                        "ORDER BY seq", (start, end))
            return cur.fetchall()
        finally:
            cur.close()

    def leaf_hashes_between(self, conn: Connection, start: int, end: int) -> list[bytes]:
        """Stored leaf hashes with start <= seq < end, in seq order."""
        mark = "?" if self.is_sqlite else "%s"
        cur = self._cursor(conn)
        try:
            cur.execute(f"SELECT leaf_hash FROM fedgov_entries WHERE seq >= {mark} AND seq < {mark} ORDER BY seq",
                        (start, end))
            return [h if isinstance(h, bytes) else bytes(h) if isinstance(h, memoryview) else b"" for (h,) in
                    cur.fetchall()]  # a leaf hash that is not bytes (edited) reads as b"" and fails any comparison
        finally:
            cur.close()

    def distinct(self, conn: Connection, column: str) -> list[str]:
        """Distinct values of an indexed plaintext column of the entries."""
        if column not in ("entry_type", "run_id", "node_id"):
            raise ValueError(f"no distinct listing of {column}")
        if column == "entry_type":
            return [v for v in self.stored_types(conn) if v]
        col = entries_table.c[column]
        return [v for v in conn.execute(sa.select(col).distinct()).scalars() if v]

    def stored_types(self, conn: Connection, limit: int | None = None) -> list[str]:
        """The distinct entry types in the entries (the first `limit`), in index order: a loose index scan,
        one seek per type, that stops once it has `limit`."""
        return list(conn.exec_driver_sql(STORED_TYPES_SQL + ("" if limit is None else f" LIMIT {int(limit)}"))
                    .scalars())

    def holds(self, conn: Connection, column: str, value: str) -> bool:
        """Whether any entry has `value` in the plaintext column `column` (entry_type, run_id or node_id)."""
        if column not in ("entry_type", "run_id", "node_id"):
            raise ValueError(f"no lookup of {column}")
        field = {"entry_types": [value]} if column == "entry_type" else {column: value}  # a type exactly as stored
        return conn.execute(self._matching(conn, sa.select(entries_table.c.seq).limit(1), **field)).first() is not None

    def _type_led(self, conn: Connection) -> bool:
        """Whether the entries carry the one type-led index of new ledgers (older ones have three others)."""
        if self._type_led_index is None:
            names = {ix["name"] for ix in sa.inspect(conn).get_indexes("fedgov_entries")}
            self._type_led_index = TYPE_LED_INDEX in names
        return self._type_led_index

    def iter_entries(self, conn: Connection, batch: int = 50000) -> Iterator[tuple]:
        """All entry rows in seq order, streamed in big driver-level chunks, as tuples in ENTRY_COLUMNS order."""
        sql = f"SELECT {', '.join(ENTRY_COLUMNS)} FROM fedgov_entries ORDER BY seq"
        raw = conn.connection.driver_connection
        # A named (server-side) cursor on PostgreSQL, so a million rows never sit in memory at once; binary,
        # so bytea travels as bytes, not hex (the same values; ~0.3 us a row less for the client).
        cur = raw.cursor() if self.is_sqlite else raw.cursor(name="fedgov_verify", binary=True)
        try:
            cur.execute(sql)
            while True:
                chunk = cur.fetchmany(batch)
                if not chunk:
                    return
                yield from chunk
        finally:
            cur.close()

    def seq_bounds(self, conn: Connection) -> tuple[Any, Any]:
        """The first and the last stored seq in seq order, as stored (None when there is no entry)."""
        cur = self._cursor(conn)
        try:
            cur.execute("SELECT (SELECT seq FROM fedgov_entries ORDER BY seq LIMIT 1), "
                        "(SELECT seq FROM fedgov_entries ORDER BY seq DESC LIMIT 1)")
            first, last = cur.fetchone()
            return first, last
        finally:
            cur.close()

    def export_snapshot(self, conn: Connection) -> str | None:
        """PostgreSQL: the id of `conn`'s snapshot, for other sessions to read the same rows (None on SQLite)."""
        if self.is_sqlite:
            return None
        return str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar())

    def reader_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """How another process opens its own read connection to this database: the driver's connect() arguments.

        SQLite: the file, read-only where the store is (`_readonly_uri`); PostgreSQL: the
        engine's own arguments, less those that are Python objects (adapters).
        """
        if self.is_sqlite:
            path = Path(make_url(self.url).database or "")
            uri = _readonly_uri(path) if self.readonly else None
            return ((uri, ) if uri is not None else (str(path), )), {"uri": uri is not None, "timeout": 120}
        args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        return tuple(args), {k: v for k, v in kwargs.items() if isinstance(v, (str, int, float, bool))}

    def iter_nodes(self, conn: Connection) -> Iterator[tuple[int, int, bytes]]:
        """Every stored tree node as (level, idx, hash), ordered by level then idx."""
        cur = self._cursor(conn)
        try:
            cur.execute("SELECT level, idx, hash FROM fedgov_tree_nodes ORDER BY level, idx")
            while True:
                chunk = cur.fetchmany(50000)
                if not chunk:
                    return
                yield from chunk  # as stored: tree_cache.compare judges rows of the wrong type
        finally:
            cur.close()

    def replace_nodes(self, conn: Connection, delete: Sequence[tuple[int, int]],
                      insert: Sequence[tuple[int, int, bytes]]) -> None:
        """Rewrite cached tree nodes (repair only): lift the append-only triggers, change, put them back.

        Runs inside the caller's write transaction, so the table is never left unprotected;
        triggers that were missing (dropped by whoever broke the cache) come back too.
        """
        mark = "?" if self.is_sqlite else "%s"
        table = "fedgov_tree_nodes"
        if self.is_sqlite:
            for op in ("update", "delete"):
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_{op}")
        else:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        cur = self._cursor(conn)
        try:
            if delete:
                cur.executemany(f"DELETE FROM {table} WHERE level = {mark} AND idx = {mark}", list(delete))
        finally:
            cur.close()
        self.insert_nodes(conn, insert)
        self._protect(conn, table)

    # -- whole tables (moving a ledger) -------------------------------------------------------

    def ledger_tables(self, conn: Connection) -> list[str]:
        """The tables of a fedgov ledger this database holds, in LEDGER_TABLES order."""
        present = set(sa.inspect(conn).get_table_names())
        return [name for name in ALL_TABLES if name in present]

    def count_rows(self, conn: Connection, table: str) -> int:
        return int(conn.execute(sa.select(sa.func.count()).select_from(_table(table))).scalar() or 0)

    def iter_rows(self, conn: Connection, table: str, batch: int = 50000) -> Iterator[list[tuple]]:
        """Every row of a ledger table in key order, in batches of tuples in its column order.

        Streamed: a server-side cursor on PostgreSQL, `fetchmany` on SQLite, so a million
        entries never sit in memory at once. The values are as stored, unchecked.
        """
        columns = [c.name for c in _table(table).columns]
        keys = [c.name for c in _table(table).primary_key.columns]
        raw = conn.connection.driver_connection
        cur = raw.cursor() if self.is_sqlite else raw.cursor(name=f"fedgov_rows_{table}")
        try:
            cur.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {', '.join(keys)}")
            while True:
                chunk = cur.fetchmany(batch)
                if not chunk:
                    return
                yield chunk
        finally:
            cur.close()

    def insert_rows(self, conn: Connection, table: str, rows: Sequence[tuple]) -> None:
        """Insert rows given as tuples in the table's column order, in one driver call (COPY on PostgreSQL)."""
        self._bulk_insert(conn, table, [c.name for c in _table(table).columns], rows)

    def drop_schema(self, conn: Connection, drop_function: bool) -> None:
        """Drop every ledger table (and, on PostgreSQL with `drop_function`, the triggers' function).

        Only for taking back a copy this process made (`move.py`): the triggers guard rows, not tables.
        """
        for name in reversed(ALL_TABLES):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        if drop_function and not self.is_sqlite:
            conn.exec_driver_sql("DROP FUNCTION IF EXISTS fedgov_reject_change()")

    def has_trigger_function(self, conn: Connection) -> bool:
        """Whether PostgreSQL already holds the function the append-only triggers call (never on SQLite)."""
        if self.is_sqlite:
            return False
        return conn.execute(sa.text("SELECT to_regprocedure('fedgov_reject_change()') IS NOT NULL")).scalar() is True

    # -- meta ---------------------------------------------------------------------------

    def meta_value(self, conn: Connection, key: str) -> str | None:
        """A meta row read now, in this transaction (the `meta` dict is the one read at open)."""
        return conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == key)).scalar()

    def set_meta(self, conn: Connection, key: str, value: str) -> None:
        """Insert or replace one meta row (only `kek_id` changes after creation)."""
        conn.execute(meta_table.delete().where(meta_table.c.key == key))
        conn.execute(meta_table.insert(), [{"key": key, "value": value}])
        self.meta[key] = value

    # -- checkpoints --------------------------------------------------------------------

    def checkpoints(self, conn: Connection) -> list[dict[str, Any]]:
        rows = conn.execute(sa.select(checkpoints_table).order_by(checkpoints_table.c.id))
        return [dict(r._mapping) for r in rows]

    def checkpoints_of_size(self, conn: Connection, tree_size: int) -> list[dict[str, Any]]:
        rows = conn.execute(sa.select(checkpoints_table).where(checkpoints_table.c.tree_size == tree_size))
        return [dict(r._mapping) for r in rows]

    def latest_checkpoint(self, conn: Connection) -> dict[str, Any] | None:
        row = conn.execute(sa.select(checkpoints_table).order_by(checkpoints_table.c.id.desc()).limit(1)).first()
        return dict(row._mapping) if row else None

    def insert_checkpoint(self, conn: Connection, cp_id: int, tree_size: int, note: str,
                          proof: Sequence[bytes], created: str) -> None:
        import base64
        conn.execute(checkpoints_table.insert(), [{
            "id": cp_id, "tree_size": tree_size, "note": note, "created": created,
            "consistency_proof": json.dumps([base64.b64encode(p).decode() for p in proof]),
        }])

    # -- data keys ------------------------------------------------------------------------

    def live_keys_for(self, conn: Connection, scopes: Sequence[str]) -> list[Any]:
        c = data_keys_table.c
        q = sa.select(c.key_id, c.scope, c.wrapped_key, c.kek_id).where(  # live = still wrapped, one definition
            c.scope.in_(list(scopes)), c.wrapped_key.is_not(None))
        return list(conn.execute(q))

    def data_key(self, conn: Connection, key_id: str) -> Any:
        c = data_keys_table.c
        return conn.execute(sa.select(data_keys_table).where(c.key_id == key_id)).first()

    def data_keys(self, conn: Connection, key_ids: Sequence[str]) -> list[Any]:
        """Several data-key rows in one query (chunked under the driver's parameter limit)."""
        c = data_keys_table.c
        rows: list[Any] = []
        for start in range(0, len(key_ids), 500):
            chunk = list(key_ids[start:start + 500])
            rows.extend(conn.execute(sa.select(data_keys_table).where(c.key_id.in_(chunk))))
        return rows

    def kek_ids_in_use(self, conn: Connection) -> set[str]:
        """KEK ids that wrap at least one live data key."""
        c = data_keys_table.c
        return set(conn.execute(sa.select(c.kek_id).where(c.wrapped_key.is_not(None)).distinct()).scalars())

    def all_live_keys(self, conn: Connection) -> list[Any]:
        c = data_keys_table.c
        return list(conn.execute(sa.select(c.key_id, c.scope, c.wrapped_key, c.kek_id)
                                 .where(c.wrapped_key.is_not(None))))

    def insert_data_key(self, conn: Connection, row: dict[str, Any]) -> None:
        conn.execute(data_keys_table.insert(), [row])

    def rewrap_data_keys(self, conn: Connection, rows: Sequence[tuple[bytes, str, str]]) -> None:
        """Store re-wrapped data keys, (wrapped key, kek id, key id) each, in one driver call."""
        if not rows:
            return
        mark = "?" if self.is_sqlite else "%s"
        cur = self._cursor(conn)
        try:
            cur.executemany(f"UPDATE fedgov_data_keys SET wrapped_key = {mark}, kek_id = {mark} WHERE key_id = {mark}",
                            list(rows))
        finally:
            cur.close()

    def destroy_data_keys(self, conn: Connection, key_ids: Sequence[str], when: str, actor: str) -> None:
        c = data_keys_table.c
        conn.execute(data_keys_table.update().where(c.key_id.in_(list(key_ids)))
                     .values(wrapped_key=None, destroyed_at=when, destroyed_by=actor))


    # -- roles: identities, sealed keys, grants, batch authenticators ------------------------

    def has_role_tables(self, conn: Connection) -> bool:
        """Whether this ledger has the tables of roles and identities (made by the first `identity add`)."""
        if not self._has_role_tables:
            self._has_role_tables = sa.inspect(conn).has_table("fedgov_identities")
        return self._has_role_tables

    def create_role_tables(self, conn: Connection) -> None:
        """Make the role tables in an existing ledger, inside the caller's write transaction (idempotent)."""
        if self.has_role_tables(conn):
            return
        role_metadata.create_all(conn)
        for table in ROLE_APPEND_ONLY:
            self._protect(conn, table)
        self._has_role_tables = True

    def first_registration(self, conn: Connection) -> tuple[int, int | None]:
        """(how many identity.registered entries, the seq of the first): one indexed query, no table needed."""
        from governance.entry_types import IDENTITY_REGISTERED

        c = entries_table.c
        count, first = conn.execute(sa.select(sa.func.count(), sa.func.min(c.seq))
                                    .where(c.entry_type == IDENTITY_REGISTERED)).one()
        return int(count or 0), None if first is None else int(first)

    def identity_rows(self, conn: Connection) -> list[Any]:
        if not self.has_role_tables(conn):
            return []
        return list(conn.execute(sa.select(identities_table).order_by(identities_table.c.seq)))

    def insert_identity(self, conn: Connection, row: dict[str, Any]) -> None:
        conn.execute(identities_table.insert(), [row])

    def insert_sealed_key(self, conn: Connection, row: dict[str, Any]) -> None:
        conn.execute(sealed_keys_table.insert(), [row])

    def sealed_key(self, conn: Connection, key_id: str) -> Any:
        """The sealed-key row of `key_id`, or None (also when the ledger has no role tables)."""
        if not self.has_role_tables(conn):
            return None
        return conn.execute(sa.select(sealed_keys_table).where(sealed_keys_table.c.key_id == key_id)).first()

    def live_sealed_key_ids(self, conn: Connection, key_ids: Sequence[str]) -> set[str]:
        c = sealed_keys_table.c
        return set(conn.execute(sa.select(c.key_id).where(c.key_id.in_(list(key_ids)),
                                                          c.destroyed_at.is_(None))).scalars())

    def live_sealed_keys_for(self, conn: Connection, scopes: Sequence[str]) -> list[Any]:
        if not self.has_role_tables(conn):
            return []
        c = sealed_keys_table.c
        return list(conn.execute(sa.select(c.key_id, c.scope).where(c.scope.in_(list(scopes)),
                                                                    c.destroyed_at.is_(None))))

    def destroy_sealed_keys(self, conn: Connection, key_ids: Sequence[str], when: str, actor: str) -> None:
        c = sealed_keys_table.c
        conn.execute(sealed_keys_table.update().where(c.key_id.in_(list(key_ids)))
                     .values(destroyed_at=when, destroyed_by=actor))

    def insert_grants(self, conn: Connection, rows: Sequence[tuple[str, str, bytes, str]]) -> None:
        """Grants as (key_id, recipient fingerprint, wrapped, created), in one driver call."""
        self._bulk_insert(conn, "fedgov_key_grants", ("key_id", "recipient", "wrapped", "created"), rows)

    def grants_to(self, conn: Connection, recipient: str, key_ids: Sequence[str]) -> dict[str, Any]:
        """key_id -> wrapped bytes (None when shredded) of the grants to `recipient` among `key_ids`."""
        if not self.has_role_tables(conn):
            return {}
        c = grants_table.c
        found: dict[str, Any] = {}
        for start in range(0, len(key_ids), 500):
            chunk = list(key_ids[start:start + 500])
            for key_id, wrapped in conn.execute(sa.select(c.key_id, c.wrapped).where(
                    c.recipient == recipient, c.key_id.in_(chunk))):
                found[key_id] = wrapped
        return found

    def granted_key_ids(self, conn: Connection, recipient: str) -> set[str]:
        c = grants_table.c
        return set(conn.execute(sa.select(c.key_id).where(c.recipient == recipient)).scalars())

    def destroy_grants(self, conn: Connection, key_ids: Sequence[str]) -> None:
        if not self.has_role_tables(conn) or not key_ids:
            return
        c = grants_table.c
        conn.execute(grants_table.update().where(c.key_id.in_(list(key_ids))).values(wrapped=None))

    def insert_batch_auth(self, conn: Connection, first: int, count: int, writer: str, tag: bytes) -> None:
        conn.execute(batch_auth_table.insert(), [{"first_seq": first, "count": count, "writer": writer, "tag": tag}])

    def batch_auths_between(self, conn: Connection, start: int, end: int) -> dict[int, tuple[int, str, bytes]]:
        """first_seq -> (count, writer, tag) of the batch authenticators starting in [start, end)."""
        if not self.has_role_tables(conn):
            return {}
        c = batch_auth_table.c
        rows = conn.execute(sa.select(c.first_seq, c.count, c.writer, c.tag).where(c.first_seq >= start,
                                                                                   c.first_seq < end))
        return {int(f): (int(n), str(w), t) for f, n, w, t in rows}


    def batch_auth_covering(self, conn: Connection, seq: int) -> tuple[int, int, str, bytes] | None:
        """(first_seq, count, writer, tag) of the batch authenticator whose batch holds `seq`; None if none does."""
        if not self.has_role_tables(conn):
            return None
        c = batch_auth_table.c
        row = conn.execute(sa.select(c.first_seq, c.count, c.writer, c.tag).where(c.first_seq <= seq)
                           .order_by(c.first_seq.desc()).limit(1)).first()
        if row is None or int(row[0]) + int(row[1]) <= seq:
            return None
        return int(row[0]), int(row[1]), str(row[2]), row[3]


def _table(name: str) -> sa.Table:
    return metadata.tables[name] if name in metadata.tables else role_metadata.tables[name]


def row_to_entry(r: Any) -> Entry:
    """A database row (mapping or tuple in table column order) as an Entry."""
    m = r._mapping if hasattr(r, "_mapping") else r
    try:
        return Entry(seq=int(m["seq"]), entry_type=m["entry_type"], timestamp=m["timestamp"], run_id=m["run_id"],
                     round=None if m["round"] is None else int(m["round"]), node_id=m["node_id"],
                     model_hash=m["model_hash"], config_hash=m["config_hash"], key_id=m["key_id"],
                     ciphertext=as_bytes(m["ciphertext"]), leaf_hash=as_bytes(m["leaf_hash"]))
    except (TypeError, ValueError) as err:
        raise StoreError(f"entry seq {m['seq']} cannot be read as the schema defines it ({err}): the row was edited; "
                         "run `fedgov audit verify`") from err
