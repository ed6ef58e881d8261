"""The link from a retraining run to the monitor.trigger entry that caused it (run config `retrain-trigger`).

The run's `run.started` records `"trigger": {"seq": S, "leaf_hash": H}`: the seq names the
entry and its leaf hash pins its exact bytes, so a verifier holding the Merkle tree can check
that the run answers that decision and no other. A seq that names no monitor.trigger entry is
refused before the run starts: a retraining run never claims a cause the ledger lacks.
"""

from __future__ import annotations

from typing import Any

from governance import entry_types as et
from governance.errors import UsageError
from governance.ledger import Ledger


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
