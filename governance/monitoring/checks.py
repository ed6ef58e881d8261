"""One retraining check against the ledger: read the evidence, weigh the triggers, decide, record the decision.

`fedgov monitor check` and every round of `fedgov monitor watch` call `check_and_record`, so both
record the same `monitor.trigger` entry: the parsed policy and its hash, the evidence's seqs,
each trigger's statistic, threshold and outcome, the decision and its reason. The entry is
appended (and signed) before anything is shown or launched: no decision goes unrecorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from governance import entry_types as et
from governance.ledger import EntryDraft, Ledger
from governance.monitoring.evidence import Evidence, latest_evidence, past_retraining
from governance.monitoring.policy import Policy
from governance.monitoring.triggers import Decision, TriggerResult, decide, evaluate, trigger_record


@dataclass(frozen=True)
class CheckOutcome:
    """What one check found and decided, and the monitor.trigger entry that records it."""

    seq: int
    evidence: Evidence
    results: list[TriggerResult]
    decision: Decision
    record: dict[str, Any]

    @property
    def fired(self) -> list[str]:
        return [r.name for r in self.results if r.fired]


def check_and_record(ledger: Ledger, policy: Policy, *, command: str, run_id: str | None = None,
                     now: datetime | None = None) -> CheckOutcome:
    """Weigh the latest evidence (of `run_id`, else the latest run) and append the monitor.trigger entry."""
    if ledger.policy_in_force:  # the evidence is decrypted: the read is recorded first (docs/access-policy.md)
        from governance.audit_reads import record_read

        record_read(ledger, {"command": f"monitor {command}", "run": run_id})
    now = now or datetime.now(timezone.utc)
    evidence = latest_evidence(ledger, run_id)
    results = evaluate(policy, evidence)
    past = past_retraining(ledger, after_seq=evidence.metrics_seq, since=now - timedelta(seconds=policy.cooldown_s))
    decision = decide(results, evidence, command=command, past=past, cooldown_s=policy.cooldown_s, now=now)
    record = trigger_record(policy, evidence, results, decision, command)
    seq = ledger.append([EntryDraft(et.MONITOR_TRIGGER, record, scope=et.MONITOR_SCOPE)],
                        sign=True)[0]
    return CheckOutcome(seq, evidence, results, decision, record)
