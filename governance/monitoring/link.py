"""The link from a retraining run to the monitor.trigger entry that caused it (run config `retrain-trigger`).

The run's `run.started` records `"trigger": {"seq": S, "leaf_hash": H}`: the seq names the
entry and its leaf hash pins its exact bytes, so a verifier holding the Merkle tree can check
that the run answers that decision and no other. A seq that names no monitor.trigger entry is
refused before the run starts: a retraining run never claims a cause the ledger lacks.
With the keys to read payloads (`trigger_cause`), so is an entry that decided `no-retrain` (a
check, or a watch held by its cooldown), and one whose decision another run's `run.started`
already answers: one decision starts one retraining run.
"""

from __future__ import annotations

from typing import Any

from governance import entry_types as et
from governance.errors import UsageError
from governance.ledger import KeyDestroyedError, Ledger


def trigger_link(ledger: Ledger, seq: int) -> dict[str, Any]:
    """`{"seq", "leaf_hash"}` of monitor.trigger entry `seq` (index fields only: no key needed); else UsageError."""
    try:
        entry = ledger.get(seq)
    except UsageError:
        raise UsageError(f"--retrain-trigger {seq} names no ledger entry; give the seq of the monitor.trigger entry "
                         "`fedgov monitor check` or `watch` printed") from None
    if entry.entry_type != et.MONITOR_TRIGGER:
        raise UsageError(f"--retrain-trigger {seq} names a {entry.entry_type} entry, not a {et.MONITOR_TRIGGER}; "
                         "give the seq `fedgov monitor check` or `watch` printed")
    return {"seq": seq, "leaf_hash": entry.leaf_hash.hex()}


def trigger_cause(ledger: Ledger, seq: int) -> dict[str, Any]:
    """`trigger_link`, and the entry's payload says `retrain` and no recorded run answers it yet; else UsageError.

    Needs a ledger that reads payloads (the coordinator's, the operator's).
    """
    link = trigger_link(ledger, seq)
    try:
        decision = ledger.read_payload(ledger.get(seq)).get("decision")
    except KeyDestroyedError:
        raise UsageError(f"--retrain-trigger {seq}: its payload was erased, so no retraining decision can be "
                         "shown") from None
    if decision != "retrain":
        raise UsageError(f"--retrain-trigger {seq} decided {decision!r}, not 'retrain': a run cannot answer a "
                         "decision not to retrain")
    for started in ledger.query(entry_type=et.RUN_STARTED):
        try:
            claimed = ledger.read_payload(started).get("trigger")
        except KeyDestroyedError:
            continue
        if isinstance(claimed, dict) and type(claimed.get("seq")) is int and claimed["seq"] == seq:
            raise UsageError(f"--retrain-trigger {seq} was already answered by run {started.run_id} (run.started "
                             f"seq {started.seq}): one decision starts one retraining run")
    return link


def check_before_run(workspace: Any, seq: int) -> None:
    """Before a retraining run starts: `trigger_link`, and `trigger_cause` too when the environment holds the keys
    the coordinator will open the ledger with (else the coordinator refuses it when it records run.started)."""
    import os

    from governance.keystore import ENV_PASSPHRASE

    with Ledger.open_readonly(workspace) as ledger:
        trigger_link(ledger, seq)
    if os.environ.get(ENV_PASSPHRASE) or os.environ.get("FEDGOV_KEK"):
        with Ledger.open(workspace, write=False) as ledger:
            trigger_cause(ledger, seq)
