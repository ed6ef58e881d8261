"""Moving a workspace's ledger to another database (`fedgov audit move --to URL`).

The ledger's rows are copied as they are: entries, tree nodes, checkpoints, wrapped data
keys and meta rows hold nothing that names the database, so the copy verifies, decrypts
and takes new writes with the workspace's keystore, trust file and signed head unchanged.

1. Refuse, each in one line: a URL with a password (as `audit init` does), the database the
   workspace already uses, `FEDGOV_DB_URL` set (it would override config.json), a target
   that holds fedgov tables (SQLite: a file that exists), and a workspace something writes
   to: a run in progress (its lock `runs/<id>.lock` held), a coordinator (its lock
   `coordinator/coordinator.lock` held), another command holding the workspace's lock or the
   ledger's writer lock for `WAIT_S`.
2. Hold the workspace's lock (a command that opens the ledger meanwhile waits, then reads
   the new config.json) and the source's writer lock (no writer commits meanwhile; one that
   opened the ledger before and waits for it refuses afterwards, `Ledger._refuse_moved_away`).
   The source must have no entries after its latest checkpoint: that checkpoint is the
   signed state the copy must reproduce.
3. In one transaction on the target: the schema exactly as `audit init` makes it
   (`LedgerStore.create_schema`, PostgreSQL's append-only triggers included) with the
   source's meta rows and schema version, and the role tables when the source has them
   (`create_role_tables`), then every row of every table, streamed in
   batches (a server-side cursor on PostgreSQL, `fetchmany` on SQLite; COPY or executemany).
4. Check, in that transaction: the same row count in every table; the copy verifies as
   `fedgov audit verify` verifies it (`verify_store`: every leaf, every checkpoint against
   the pinned key, the cache of tree nodes, the workspace's signed head); its tree size and
   root are those of the source's latest signed checkpoint, which is also its latest row.
5. With SIGINT/SIGTERM held: commit, then replace config.json (atomically) naming the new
   database. A signal that came meanwhile puts config.json back and drops the copy first.

All or nothing: before the commit a failure, Ctrl-C or SIGTERM rolls the transaction back;
after it, the tables this made are dropped (a SQLite file this made is removed) and
config.json keeps its old bytes. The source is only read: it stays as it was, a backup.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from governance.deferred_signals import signals_deferred
from governance.errors import UsageError, VerificationError
from governance.ledger.ledger import check_db_url
from governance.ledger.store import LEDGER_TABLES, ROLE_TABLES, LedgerStore, StoreError, display_url
from governance.ledger.verify import verify_store, workspace_trust
from governance.private_files import write_atomic
from governance.verify.checkpoint import parse_checkpoint
from governance.verify.rows import VerifyReport
from governance.workspace import ENV_DB_URL, Workspace

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from governance.verify.checkpoint import VerifierKey
    from governance.verify.rows import KnownCheckpoint

WAIT_S = 10.0  # how long a move waits for the workspace's lock and the ledger's writer lock
BATCH = 50_000  # rows per fetch and per insert
# The lock `fedgov server start` holds on its state directory (deploy/coordinator.py), by default in the workspace.
COORDINATOR_LOCK = Path("coordinator") / "coordinator.lock"
WHAT = {"fedgov_entries": "entries", "fedgov_tree_nodes": "tree nodes", "fedgov_checkpoints": "checkpoints",
        "fedgov_data_keys": "data keys", "fedgov_meta": "meta rows",  # what each table holds, in the order told
        # Roles (§7), in ledgers that registered an identity: told only when the source has them.
        "fedgov_identities": "identities", "fedgov_sealed_keys": "sealed keys", "fedgov_key_grants": "key grants",
        "fedgov_batch_auth": "batch authenticators"}


class CopyCheckError(VerificationError):
    """The copy is not the source's signed ledger: nothing was moved."""


@dataclass(frozen=True)
class MoveReport:
    source: str  # display URLs: passwords hidden
    target: str
    rows: dict[str, int]  # table -> rows copied
    checked: VerifyReport
    checkpoint_id: int
    copy_s: float  # schema and rows
    check_s: float  # counts, verification, comparison with the signed checkpoint


def move_ledger(ws: Workspace, to_url: str, *, say: Callable[[str], None] = lambda _line: None,
                batch: int = BATCH, wait_s: float = WAIT_S) -> MoveReport:
    """Copy the workspace's ledger into the database `to_url`, check the copy, then switch config.json to it."""
    if os.environ.get(ENV_DB_URL):
        raise UsageError(f"{ENV_DB_URL} is set, and it overrides the workspace's config.json: unset it to move the "
                         "workspace's ledger")
    source_url = ws.db_url
    target_url = _target_url(to_url)
    if _same_database(source_url, target_url):
        raise UsageError(f"--to names the database this workspace already uses ({display_url(source_url)}): "
                         "nothing to move")
    _refuse_existing_file(target_url)
    keys, _ = workspace_trust(ws, workspace_head=False)  # a missing trust file stops the move before anything
    with ws.lock(wait_s=wait_s):
        _refuse_live_writers(ws)
        old_config = ws.config_path.read_bytes()
        config = ws.config()
        _, head = workspace_trust(ws, keys)  # read under the lock: no writer advances it meanwhile
        source = LedgerStore.open(source_url)
        try:
            with source.write(wait_s=wait_s) as src:
                present = [t for t in source.ledger_tables(src) if t in ROLE_TABLES]  # the five always
                expected = {table: source.count_rows(src, table) for table in (*LEDGER_TABLES, *present)}
                latest = _signed_state(source, src, expected["fedgov_entries"])
                target = _new_target(target_url)
                try:
                    rows, checked, seconds = _copy_and_switch(ws, source, src, target, expected, latest, keys, head, batch,
                                                     wait_s, {**config, "db_url": target_url}, old_config, say)
                finally:
                    target.close()
        finally:
            source.close()
    return MoveReport(display_url(source_url), display_url(target_url), rows, checked, int(latest["id"]), *seconds)


def _target_url(to_url: str) -> str:
    """`--to`, checked as `audit init` checks `--db-url`; a SQLite file is named by its absolute path."""
    from sqlalchemy.engine import make_url

    check_db_url(to_url, "--to")
    parts = make_url(to_url)
    if parts.get_backend_name() != "sqlite":
        return to_url
    path = Path(parts.database or "").expanduser().resolve()
    return parts.set(database=str(path)).render_as_string(hide_password=False)


def _refuse_existing_file(url: str) -> None:
    """A SQLite target is a new file in an existing directory: the move never writes into a file it did not make."""
    path = _sqlite_path(url)
    if path is None:
        return
    if path.exists() or path.is_symlink():
        raise UsageError(f"--to {path} already exists: a move to SQLite makes a new file")
    if not path.parent.is_dir():
        raise UsageError(f"--to {path}: the directory {path.parent} does not exist")


def _sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parts = make_url(url)
    return Path(parts.database or "") if parts.get_backend_name() == "sqlite" else None


def _same_database(a: str, b: str) -> bool:
    """Whether two URLs name one database (whatever the user or driver); an alias still fails `_new_target`."""
    from sqlalchemy.engine import make_url

    first, second = make_url(a), make_url(b)
    if first.get_backend_name() != second.get_backend_name():
        return False
    if first.get_backend_name() == "sqlite":
        return Path(first.database or "").expanduser().resolve() == Path(second.database or "").expanduser().resolve()

    def where(url):  # host and port, in the URL or its query (a socket directory), and the database
        return (url.host or url.query.get("host") or "", url.port or int(url.query.get("port") or 5432), url.database)

    return where(first) == where(second)


def _refuse_live_writers(ws: Workspace) -> None:
    """A run or a coordinator that holds its lock writes to the ledger it opened: the old one, after a move."""
    runs = sorted((ws.path / "runs").glob("*.lock"))
    for path in runs:
        if _held(path):
            raise UsageError(f"run {path.name.removesuffix('.lock')} is in progress on this workspace (its lock "
                             f"runs/{path.name} is held): move the ledger when no run is going")
    if _held(ws.path / COORDINATOR_LOCK):
        raise UsageError(f"a coordinator (`fedgov server start`) is running on this workspace ({COORDINATOR_LOCK} is "
                         "held): stop it first; the ServerApps it starts write to the ledger")


def _held(path: Path) -> bool:
    """Whether another open file holds an flock on `path` now."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False  # not there (or not ours to open): nobody holds it through us
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the probe's own lock too
    return False


def _signed_state(source: LedgerStore, conn: Connection, entries: int) -> dict:
    """The source's latest checkpoint row, which must cover every entry: the state the copy must reproduce."""
    latest = source.latest_checkpoint(conn)
    if latest is None:
        raise UsageError("the ledger holds no signed checkpoint, so a copy could not be checked against one: run "
                         "`fedgov audit verify`")
    signed = int(latest["tree_size"])
    if signed != entries:
        raise UsageError(f"the ledger holds {entries - signed} entries after its latest signed checkpoint (tree size "
                         f"{signed}): sign them first (`fedgov audit checkpoint`), then move" if entries > signed else
                         f"the ledger's latest checkpoint covers {signed} entries but it holds {entries}: run "
                         "`fedgov audit verify`")
    return latest


def _new_target(url: str) -> LedgerStore:
    """An engine for the target; a SQLite target file is created 0600 here (and removed again on failure)."""
    try:
        return LedgerStore.connect_new(url)
    except ImportError as err:
        raise StoreError(f"--to {display_url(url)}: no driver for it is installed ({err.name})") from err
    except FileExistsError as err:
        raise UsageError(f"--to {err.filename} already exists: a move to SQLite makes a new file") from err


def _copy_and_switch(ws: Workspace, source: LedgerStore, src: Connection, target: LedgerStore,
                     expected: dict[str, int], latest: dict, keys: list[VerifierKey], head: KnownCheckpoint | None,
                     batch: int, wait_s: float, new_config: dict, old_config: bytes,
                     say: Callable[[str], None]) -> tuple[dict[str, int], VerifyReport, tuple[float, float]]:
    committed = made_function = False
    try:
        try:
            with target.engine.connect() as conn:  # first without the writer lock: the source's, if it is one database
                _refuse_a_ledger_there(target, conn)
            with target.write(wait_s=wait_s) as conn:
                _refuse_a_ledger_there(target, conn)  # again, under the lock: another move to it may have committed
                made_function = not target.has_trigger_function(conn)
                say(f"copying {expected['fedgov_entries']} entries and their tree, checkpoints and keys from "
                    f"{source.display_url} to {target.display_url}")
                started = time.monotonic()
                rows = _copy(source, src, target, conn, batch)
                copied = time.monotonic()
                say("checking the copy")
                checked = _check(target, conn, expected, rows, latest, keys, head)
                seconds = copied - started, time.monotonic() - copied
                with signals_deferred() as held:
                    conn.get_transaction().commit()
                    committed = True
                    try:
                        ws.write_config(new_config)
                    except OSError as err:
                        raise UsageError(f"cannot write {ws.config_path}: {err.strerror}; nothing was moved") from err
                    if held:  # Ctrl-C or SIGTERM while switching: put everything back, then let it through
                        write_atomic(ws.config_path, old_config)
                        _take_back(target, made_function)
                        committed = False
        except Exception as err:  # noqa: BLE001 - only the database drivers' own errors become a line here
            if not _is_database_error(err):
                raise
            cause = getattr(err, "orig", None) or err
            reason = " ".join(str(cause).split())[:200]
            raise StoreError(f"the move failed, nothing was moved ({type(cause).__name__}: {reason})") from err
    except BaseException:
        if committed:
            with suppress(Exception):  # the first error is the one to report
                _take_back(target, made_function)
        _remove_sqlite_target(target)
        raise
    return rows, checked, seconds


def _refuse_a_ledger_there(target: LedgerStore, conn: Connection) -> None:
    present = target.ledger_tables(conn)
    if present:
        raise UsageError(f"--to {target.display_url} already holds fedgov tables ({', '.join(present)}): a move needs "
                         "a database with none")


def _copy(source: LedgerStore, src: Connection, target: LedgerStore, conn: Connection, batch: int) -> dict[str, int]:
    """Schema as `audit init` makes it, with the source's meta rows and version; then every row of every table."""
    meta = {key: value for chunk in source.iter_rows(src, "fedgov_meta", batch) for key, value in chunk}
    version = meta.pop("schema_version", "")
    target.create_schema(conn, meta, schema_version=version)
    rows = {"fedgov_meta": len(meta) + 1}
    roles = [t for t in source.ledger_tables(src) if t in ROLE_TABLES]
    if roles:  # the role tables, made as the first `identity add` makes them (append-only triggers included)
        target.create_role_tables(conn)
    for table in (*LEDGER_TABLES[1:], *roles):
        rows[table] = 0
        for chunk in source.iter_rows(src, table, batch):
            target.insert_rows(conn, table, chunk)
            rows[table] += len(chunk)
    return rows


def _check(target: LedgerStore, conn: Connection, expected: dict[str, int], copied: dict[str, int], latest: dict,
           keys: list[VerifierKey], head: KnownCheckpoint | None) -> VerifyReport:
    """The copy holds every row, verifies with the pinned key and the signed head, and is the source's signed tree."""
    for table in expected:
        there = target.count_rows(conn, table)
        if not expected[table] == copied[table] == there:
            raise CopyCheckError(f"the copy does not check out, nothing was moved: {table} has {expected[table]} rows "
                                 f"in the source, {copied[table]} copied, {there} in the copy")
    try:
        checked = verify_store(target, conn, keys, [head] if head else [], head)
    except VerificationError as err:
        raise CopyCheckError(f"the copy does not verify, nothing was moved (`fedgov audit verify` on the source "
                             f"tells the same): {err}") from err
    signed = parse_checkpoint(latest["note"])
    copy_latest = target.latest_checkpoint(conn)
    if (checked.entries, checked.root_hex) != (signed.size, signed.root.hex()) or copy_latest is None \
            or copy_latest["note"] != latest["note"]:
        raise CopyCheckError(f"the copy does not check out, nothing was moved: its tree (size {checked.entries}, root "
                             f"{checked.root_hex}) is not the source's latest signed checkpoint #{latest['id']} "
                             f"(size {signed.size}, root {signed.root.hex()})")
    return checked


def _is_database_error(err: BaseException) -> bool:
    """SQLAlchemy's, sqlite3's or psycopg's errors (the copy uses the drivers' own cursors), known by module."""
    return any(cls.__module__.split(".")[0] in ("sqlalchemy", "sqlite3", "psycopg") for cls in type(err).__mro__)


def _take_back(target: LedgerStore, made_function: bool) -> None:
    """Drop the committed copy: the tables and the triggers' function when this move made it, or the SQLite file."""
    if target.is_sqlite:
        _remove_sqlite_target(target)
        return
    with target.write() as conn:
        target.drop_schema(conn, made_function)


def _remove_sqlite_target(target: LedgerStore) -> None:
    """Remove the SQLite file this move made, with its journal files (a PostgreSQL target has none)."""
    path = _sqlite_path(target.url)
    if path is None:
        return
    target.close()
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
