"""Verifying a workspace's ledger: read its rows from the store and hand them to governance.verify.

Read-only and with no secret. Besides the checks of `governance.verify.rows.verify_rows`,
the cache of tree nodes is compared with the tree the entries give, and the workspace's
own record of its last signed checkpoint must still be in the database. Also the CLI's
readers of a trust file and a kept checkpoint, which name its flags in their errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from governance.errors import FedgovError, UsageError, VerificationError
from governance.ledger.tree_cache import ExpectedNodes, add_nodes, compare
from governance.verify.checkpoint import CheckpointError, VerifierKey
from governance.verify.inputs import load_known_checkpoint, load_trusted_keys  # noqa: F401 (re-exported: the CLI's readers)
from governance.verify.rows import KnownCheckpoint, VerifyReport, check_signed, ledger_origin, verify_rows
from governance.workspace import Workspace

if TYPE_CHECKING:  # SQLAlchemy loads only where a database is read: a bundle needs none
    from collections.abc import Callable

    from sqlalchemy.engine import Connection

    from governance.ledger.receipts import Receipt, MatchedReceipts
    from governance.ledger.roles import RoleState
    from governance.ledger.store import LedgerStore

    Then = Callable[[LedgerStore, Connection, VerifyReport, Sequence[VerifierKey]], None]


def verify_ledger(ws: Workspace, trusted: Sequence[VerifierKey] | None = None,
                  known: Sequence[KnownCheckpoint] = (), workspace_head: bool = True,
                  workers: int = 0, then: Then | None = None) -> VerifyReport:
    """Verify the ledger of a Workspace, read-only and with no secret; the cache of tree nodes too.

    Trusts `trusted`, else the workspace trust file. Besides `known`, the workspace's own
    record of its last signed checkpoint (`latest_checkpoint`), when present, must still
    be contained in the ledger: that catches a rollback of the database alone
    (`workspace_head=False` leaves it out, for adopting a restored database on purpose).
    `workers` processes read and hash the entries (0: one per core; 1: this process alone).
    `then`, when given, runs once the ledger has verified, in the same read transaction, which
    this process alone verified: it sees the very rows that were checked, and gets the keys that
    were trusted (receipts, below).
    """
    from governance.ledger.store import LedgerStore

    keys, head = workspace_trust(ws, trusted, workspace_head)
    store = LedgerStore.open(ws.db_url, readonly=True)
    try:
        return verify_store(store, None, keys, [*known, *([head] if head else [])], head,
                            1 if then is not None else workers, then)
    finally:
        store.close()


def workspace_trust(ws: Workspace, trusted: Sequence[VerifierKey] | None = None,
                    workspace_head: bool = True) -> tuple[list[VerifierKey], KnownCheckpoint | None]:
    """The keys verification trusts (`trusted`, else the workspace trust file) and the workspace's signed head."""
    keys = list(trusted) if trusted else load_trusted_keys(ws.trust_path)
    return keys, _workspace_head(ws, keys) if workspace_head else None


def verify_store(store: LedgerStore, conn: Connection | None, keys: Sequence[VerifierKey],
                 known: Sequence[KnownCheckpoint], head: KnownCheckpoint | None, workers: int = 1,
                 then: Then | None = None) -> VerifyReport:
    """Verify the ledger in an open store: in the caller's transaction `conn` (a copy not yet
    committed, `move.py`), or in a read transaction of its own when `conn` is None.

    `head` (also among `known`) is the workspace's signed head: the database's latest
    checkpoint must be at least as large. In a transaction of its own, `workers` processes
    (0: one per core) share the entries (governance/ledger/verify_workers.py); the report
    and any failure line are the same as one process gives.
    """
    from sqlalchemy.exc import SQLAlchemyError  # here: reading a bundle needs no SQLAlchemy

    from governance.ledger.verify_workers import verify_in_workers, workers_for

    workers = workers_for(workers) if conn is None else 1  # other processes cannot see the caller's transaction
    try:
        origin = ledger_origin(store.meta, "the ledger's meta table")
        with nullcontext(conn) if conn is not None else store.read() as conn:
            checkpoints = store.checkpoints(conn)
            nodes: ExpectedNodes = {}
            report = None
            if workers > 1:
                report = verify_in_workers(store, conn, checkpoints, keys, origin, known, nodes, workers)
            if report is None:
                nodes.clear()  # a parallel attempt that fell back may have collected some
                rows = store.iter_entries(conn)
                try:
                    report = verify_rows(rows, checkpoints, keys, origin=origin, known=known,
                                         on_nodes=lambda done: add_nodes(nodes, done),
                                         min_level=store.min_stored_level)
                finally:
                    rows.close()  # before the connection goes, also when a row failed
            diff = compare(nodes, store.iter_nodes(conn), store.min_stored_level)
            if diff:
                raise VerificationError(f"{diff.describe()}: the cache of tree nodes is corrupted (entries and "
                                        "checkpoints verify); rebuild it with `fedgov audit repair-cache`")
            stored = checkpoints[-1]["tree_size"]
            if head is not None and head.checkpoint.size > stored:
                raise VerificationError(f"the database's latest checkpoint covers {stored} entries but this workspace "
                                        f"signed a tree of {head.checkpoint.size}: checkpoints were deleted from the "
                                        "database")
            report = VerifyReport(report.entries, report.checkpoints, report.root_hex, report.signed_size,
                                  report.known, diff.checked)
            if then is not None:
                then(store, conn, report, keys)
    except (SQLAlchemyError, store.engine.dialect.loaded_dbapi.Error) as err:
        raise VerificationError(f"a stored row cannot be read as the schema defines it (tampered): "
                                f"{type(err).__name__}") from err
    return report


def _workspace_head(ws: Workspace, trusted: Sequence[VerifierKey]) -> KnownCheckpoint | None:
    """The workspace's own signed head, when there is one, as a known checkpoint."""
    path = ws.head_path
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise VerificationError(f"the workspace's {path.name} cannot be read: {err}") from err
    try:
        return KnownCheckpoint(f"{path.name} (the workspace's last signed)", check_signed(text, trusted), text)
    except CheckpointError as err:
        raise VerificationError(f"the workspace's {path.name} is not signed by a trusted key: {err}") from err


class ReceiptsCheck:
    """`then` for verify_ledger: an identity's receipts (governance/ledger/receipts.py) checked against the rows just
    verified, in the same transaction. Each receipt's writer must be an identity registered with a key the
    verification trusted (the identity table one for one with its `identity.registered` entries, §4.2), and the
    entries at its seqs the ones that identity appended. `found` holds what matched, over every file; each file
    must hold one receipt of this ledger."""

    def __init__(self, files: Sequence[tuple[Path, list[Receipt]]]) -> None:
        self.files = files
        self.found: MatchedReceipts | None = None

    def __call__(self, store: LedgerStore, conn: Connection, report: VerifyReport,
                 keys: Sequence[VerifierKey]) -> None:
        from governance import entry_types as et
        from governance.ledger.receipts import MatchedReceipts, check_receipts
        from governance.ledger.roles import RoleState, check_rows_match_entries

        origin, ledger_id = ledger_origin(store.meta, "the ledger's meta table"), store.meta["ledger_id"]
        rows = store.identity_rows(conn) if store.has_role_tables(conn) else []
        roles = _roles(rows, origin, ledger_id, keys) if rows else RoleState()
        check_rows_match_entries(roles, [e.seq for e in store.query(conn, et.IDENTITY_REGISTERED)])
        found = [check_receipts(receipts, str(path), ledger_id, roles.identities, report.entries,
                                report.signed_size, lambda start, end: store.leaf_hashes_between(conn, start, end))
                 for path, receipts in self.files]
        self.found = MatchedReceipts(sum(f.matched for f in found), sum(f.signed for f in found),
                                     sum(f.other_ledgers for f in found))


def _roles(rows: list, origin: str, ledger_id: str, keys: Sequence[VerifierKey]) -> RoleState:
    """The registered identities, signed by a trusted key of the ledger's name (any of them, as §5 trusts)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from governance.ledger.roles import load_roles

    refused: FedgovError = UsageError(f"no trusted key is named {origin}: cannot tell which identities this "
                                      "ledger registered")
    for key in (k for k in keys if k.name == origin):
        try:
            return load_roles(rows, ledger_id, Ed25519PublicKey.from_public_bytes(key.public_key))
        except VerificationError as err:
            refused = err
    raise refused
