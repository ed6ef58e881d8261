"""What a run's report is made from, read out of the ledger: the report's only step with I/O.

The result, `LedgerFacts`, is plain data (index fields and decrypted payloads, the verifier's
outcome, the checkpoints), so `governance.report.model.build_report` can be a pure function
and be tested on facts built by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from governance import entry_types as et
from governance.errors import FedgovError, UsageError

MONITOR_TRIGGER = et.MONITOR_TRIGGER  # written by `fedgov monitor check|watch` (docs/monitoring.md)

if TYPE_CHECKING:
    from governance.ledger import Entry, Ledger


class UnknownRunError(UsageError):
    """A run id the ledger never recorded."""


@dataclass(frozen=True)
class Recorded:
    """One ledger entry: its index fields and its payload (None where the scope was crypto-shredded)."""

    seq: int
    entry_type: str
    timestamp: str
    run_id: str
    round: int | None
    node_id: str
    payload: dict[str, Any] | None


@dataclass(frozen=True)
class Verification:
    """The real verifier's outcome on the whole ledger (`fedgov audit verify`)."""

    ok: bool
    message: str  # the failure line, or a summary when it verified
    entries: int = 0
    checkpoints: int = 0
    root_hex: str = ""
    signed_size: int = 0


@dataclass(frozen=True)
class CheckpointRow:
    """A stored checkpoint: the tree size it signs, its root, when it was made."""

    tree_size: int
    root_hex: str
    created: str


@dataclass(frozen=True)
class LedgerFacts:
    """Everything the report of one run shows, as read from the ledger."""

    run_id: str
    ledger_id: str
    generated_at: str
    entries: list[Recorded]  # the run's own entries, in seq order
    consent: list[Recorded]  # every consent event of the run's nodes, in seq order
    registrations: list[Recorded]  # node.registered of the run's nodes
    shreds: list[Recorded]  # key.destroyed, all of them (a run's node may have been erased later)
    checkpoints: list[CheckpointRow]
    verification: Verification
    later_runs: list[str] = field(default_factory=list)  # runs recorded after this one (for lineage notes)
    # monitor.trigger entries (scope "monitor", outside the run's own entries) and the run.started of later
    # runs: the trigger timeline links a run to the evaluations of its evidence and the runs they started
    triggers: list[Recorded] = field(default_factory=list)
    later_starts: list[Recorded] = field(default_factory=list)
    # round.privacy of the other runs: a node's privacy budget spans runs (docs/privacy.md)
    other_releases: list[Recorded] = field(default_factory=list)


def known_runs(ledger: Ledger) -> list[str]:
    """The run ids the ledger records, in the order their runs started."""
    return [e.run_id for e in ledger.query(entry_type=et.RUN_STARTED)]


def read_run(ledger: Ledger, run_id: str, *, generated_at: str) -> LedgerFacts:
    """Read one run's facts; an unknown run is a usage error naming the runs there are.

    Verification runs the same code as `fedgov audit verify` on the ledger's workspace; a
    failure is reported in the facts (the report shows it), not raised.
    """
    runs = known_runs(ledger)
    if run_id not in runs:
        listed = ", ".join(runs[-10:]) + (f" (and {len(runs) - 10} earlier)" if len(runs) > 10 else "")
        raise UnknownRunError(f"no run {run_id!r} in this ledger; the runs it records: {listed or 'none'}")
    run_entries = ledger.query(run_id=run_id)
    nodes = sorted({e.node_id for e in run_entries if e.node_id} | _selection_nodes(ledger, run_entries))
    consent = [e for t in (et.CONSENT_GRANTED, et.CONSENT_WITHDRAWN) for e in ledger.query(entry_type=t)
               if e.node_id in nodes]
    registrations = [e for e in ledger.query(entry_type=et.NODE_REGISTERED) if e.node_id in nodes]
    shreds = ledger.query_types(et.stored_names(et.KEY_DESTROYED))
    with ledger.store.read() as conn:
        stored = ledger.store.checkpoints(conn)
    later = runs[runs.index(run_id) + 1:]
    starts = [e for e in ledger.query(entry_type=et.RUN_STARTED) if e.run_id in later]
    return LedgerFacts(
        run_id=run_id, ledger_id=ledger.ledger_id, generated_at=generated_at,
        entries=_read(ledger, run_entries), consent=_read(ledger, sorted(consent, key=lambda e: e.seq)),
        registrations=_read(ledger, registrations), shreds=_read(ledger, shreds),
        checkpoints=[_checkpoint_row(row) for row in stored], verification=verify(ledger),
        later_runs=later, triggers=_read(ledger, ledger.query(entry_type=MONITOR_TRIGGER)),
        later_starts=_read(ledger, starts),
        other_releases=_read(ledger, [e for e in ledger.query(entry_type=et.ROUND_PRIVACY) if e.run_id != run_id]),
    )


def _selection_nodes(ledger: Ledger, run_entries: list[Entry]) -> set[str]:
    """Candidates of the run's selections: a node never selected has no entry of its own."""
    found: set[str] = set()
    for entry in run_entries:
        if entry.entry_type == et.ROUND_SELECTION:
            payload = _payload(ledger, entry)
            if payload is not None:
                found.update(str(n) for n in payload.get("candidates", []))
    return found


def _payload(ledger: Ledger, entry: Entry) -> dict[str, Any] | None:
    from governance.ledger import KeyDestroyedError

    try:
        return ledger.read_payload(entry)
    except KeyDestroyedError:
        return None


def _read(ledger: Ledger, entries: list[Entry]) -> list[Recorded]:
    ledger.prefetch_keys(entries)
    return [Recorded(e.seq, et.LEGACY_NAMES.get(e.entry_type, e.entry_type), e.timestamp, e.run_id, e.round,
                     e.node_id, _payload(ledger, e)) for e in entries]


def _checkpoint_row(row: dict[str, Any]) -> CheckpointRow:
    from governance.verify.checkpoint import CheckpointError, parse_checkpoint

    try:
        root = parse_checkpoint(row["note"]).root.hex()
    except CheckpointError:
        root = "(unreadable note: see the verification result)"
    return CheckpointRow(int(row["tree_size"]), root, str(row["created"]))


def verify(ledger: Ledger) -> Verification:
    """Run the ledger verifier on the ledger's workspace (read-only, no secret)."""
    from governance.ledger.verify import verify_ledger

    try:
        report = verify_ledger(ledger.workspace)
    except FedgovError as err:
        return Verification(False, str(err))
    summary = f"checked {report.entries} entries, {report.checkpoints} checkpoints"
    if report.unsigned_tail:
        summary += f"; {report.unsigned_tail} entries after the last signed checkpoint are not yet signed"
    return Verification(True, summary, report.entries, report.checkpoints, report.root_hex, report.signed_size)
