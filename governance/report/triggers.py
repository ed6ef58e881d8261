"""The report's trigger timeline, pure: every `monitor.trigger` evaluation of a run's evidence, what fired
and what was decided, and the retraining runs each one started (their run.started names its seq).

A retraining run's own report shows the trigger that started it. `monitor.trigger` entries are
written by `fedgov monitor check|watch` under the "monitor" scope, outside any run's entries:
`source.read_run` gathers those about the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from governance.report.fields import integer, mapping, names, number, text
from governance.report.source import MONITOR_TRIGGER, Recorded

RETRAIN, NO_RETRAIN = "retrain", "no-retrain"


@dataclass(frozen=True)
class TriggerCheck:
    """One trigger of the policy, evaluated: its statistic against its threshold."""

    name: str
    statistic: float | None
    threshold: float | None
    fired: bool
    detail: str
    nodes: list[str]
    features: dict[str, list[str]]


@dataclass(frozen=True)
class TriggerEvent:
    """One monitor.trigger entry: the evidence it read, what fired, the decision and why."""

    seq: int
    timestamp: str
    command: str
    evidence_run: str
    evidence_round: int | None
    policy_hash: str
    checks: list[TriggerCheck]
    fired: list[str]
    decision: str
    reason: str
    started_runs: list[str]  # retraining runs whose run.started names this entry's seq


@dataclass(frozen=True)
class Triggers:
    events: list[TriggerEvent]  # evaluations of this run's evidence, in ledger order
    started_by: TriggerEvent | None  # the trigger that started this run, when it was a retraining run
    started_by_seq: int | None  # its seq as this run's run.started records it (even if unreadable)
    not_recorded: str | None


def trigger_of(started: dict[str, Any]) -> int | None:
    """The seq of the monitor.trigger entry a run.started payload names (`retrain-trigger`), or None."""
    return integer(mapping(started.get("trigger")).get("seq"))


def build_triggers(run_id: str, started: dict[str, Any], triggers: Sequence[Recorded],
                   other_starts: Sequence[Recorded]) -> Triggers:
    """The timeline of one run from the ledger's monitor.trigger entries and the run.started of other runs."""
    runs_of: dict[int, list[str]] = {}
    for e in other_starts:
        if e.payload is not None and (seq := trigger_of(e.payload)) is not None:
            runs_of.setdefault(seq, []).append(e.run_id)
    own = trigger_of(started)
    events, started_by = [], None
    for e in sorted(triggers, key=lambda x: x.seq):
        if e.entry_type != MONITOR_TRIGGER:
            continue
        event = _event(e, runs_of.get(e.seq, []))
        if e.seq == own:
            started_by = event
        if event.evidence_run == run_id:
            events.append(event)
    not_recorded = None
    if not events:
        not_recorded = (f"no monitor.trigger entry evaluated this run's evidence: neither fedgov monitor check "
                        f"nor fedgov monitor watch ran on run {run_id}")
    return Triggers(events, started_by, own, not_recorded)


def _event(e: Recorded, started_runs: list[str]) -> TriggerEvent:
    p = e.payload
    if p is None:
        return TriggerEvent(e.seq, e.timestamp, "", "", None, "", [], [], "erased", "the payload is unreadable",
                            started_runs)
    evidence = mapping(p.get("evidence"))
    checks = [TriggerCheck(text(t.get("name")), number(t.get("statistic")), number(t.get("threshold")),
                           t.get("fired") is True, text(t.get("detail")), names(t.get("nodes")),
                           {text(n): names(fs) for n, fs in mapping(t.get("features")).items()})
              for t in p.get("triggers", []) if isinstance(t, dict)] if isinstance(p.get("triggers"), list) else []
    return TriggerEvent(e.seq, e.timestamp, text(p.get("command")), text(evidence.get("run_id")) or e.run_id,
                        integer(evidence.get("round")), text(p.get("policy_hash")), checks, names(p.get("fired")),
                        text(p.get("decision")), text(p.get("reason")), started_runs)
