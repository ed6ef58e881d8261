"""The retraining triggers, weighed against one round's evidence, and the decision: pure functions, no I/O.

Three triggers, each with its statistic and the policy's threshold:

1. `accuracy-drop`: the global accuracy's drop from its best so far (monitor.metrics
   `global.drop_from_best`, else best - value); fires when it is greater than the threshold.
2. `drift-share`: the share of nodes whose drift verdict is `significant`, among the nodes
   with a verdict (`insufficient` is no verdict: too few rows to judge) in that round's
   monitor.drift entries; fires when it is at least the threshold. It names those nodes and
   their drifting features. Without drift entries for the round it uses monitor.metrics'
   own `drift` summary, when there is one.
3. `worst-node`: the worst node's local accuracy; fires when it is under the threshold,
   naming every node under it.

Then the decision (`decide`): `check` never retrains; `watch` retrains when something fired,
unless this evidence was already acted on, or the last retraining decision is younger than
the cooldown. Every decision carries its reason, for the ledger.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from governance import entry_types as et
from governance.clock import utc_now
from governance.monitoring.evidence import NO_RETRAIN, RETRAIN, Evidence, PastDecision
from governance.monitoring.policy import Policy

SIGNIFICANT = "significant"
NO_VERDICT = "insufficient"


@dataclass(frozen=True)
class TriggerResult:
    """One trigger weighed: its statistic (None: no evidence for it), threshold, and whether it fired."""

    name: str
    statistic: float | None
    threshold: float
    fired: bool
    detail: str
    nodes: list[str] = field(default_factory=list)
    features: dict[str, list[str]] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {"name": self.name, "statistic": self.statistic, "threshold": self.threshold, "fired": self.fired,
                "detail": self.detail, "nodes": list(self.nodes),
                "features": {n: list(f) for n, f in sorted(self.features.items())}}


@dataclass(frozen=True)
class Decision:
    decision: str  # "retrain" | "no-retrain"
    reason: str


def evaluate(policy: Policy, evidence: Evidence) -> list[TriggerResult]:
    """Each trigger the policy sets, weighed against the evidence, in the policy's fixed order."""
    weigh = {"accuracy-drop": _accuracy_drop, "drift-share": _drift_share, "worst-node": _worst_node}
    return [weigh[name](threshold, evidence) for name, threshold in _ordered(policy.thresholds)]


def _ordered(thresholds: dict[str, float]) -> list[tuple[str, float]]:
    order = ("accuracy-drop", "drift-share", "worst-node")
    return [(name, thresholds[name]) for name in order if name in thresholds]


def _number(value: Any) -> float | None:
    """A finite number from a payload, else None (a hostile or missing value is no evidence)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _accuracy_drop(threshold: float, evidence: Evidence) -> TriggerResult:
    name = "accuracy-drop"
    glob = _table(evidence.metrics.get("global"))
    value, best = _number(glob.get("value")), _number(glob.get("best"))
    drop = _number(glob.get("drop_from_best"))
    if drop is None and value is not None and best is not None:
        drop = best - value
    if drop is None:
        return TriggerResult(name, None, threshold, False, f"no global accuracy recorded in round {evidence.round}")
    drop = round(drop, 12)
    fired = drop > threshold
    where = f" (round {glob['best_round']})" if isinstance(glob.get("best_round"), int) else ""
    detail = (f"global accuracy {_fmt(value)} in round {evidence.round}, best {_fmt(best)}{where}: dropped "
              f"{_fmt(drop)} {'>' if fired else '<='} {_fmt(threshold)}")
    return TriggerResult(name, drop, threshold, fired, detail)


def _drift_share(threshold: float, evidence: Evidence) -> TriggerResult:
    name = "drift-share"
    if evidence.drift:
        verdicts = {node: d.get("verdict") for node, d in evidence.drift.items()}
        judged = sorted(node for node, v in verdicts.items() if isinstance(v, str) and v != NO_VERDICT)
        significant = sorted(node for node in judged if verdicts[node] == SIGNIFICANT)
        features = {node: _strings(evidence.drift[node].get("drifting_features")) for node in significant}
        source = et.MONITOR_DRIFT
    else:
        summary = _table(evidence.metrics.get("drift"))
        significant = sorted(_strings(summary.get("significant")))
        count = summary.get("nodes_with_verdict")
        if not isinstance(count, int) or isinstance(count, bool) or count < len(significant):
            return TriggerResult(name, None, threshold, False, f"no drift verdicts recorded in round {evidence.round}")
        judged, features, source = [""] * count, {}, et.MONITOR_METRICS
    if not judged:
        return TriggerResult(name, None, threshold, False,
                             f"no node had enough rows for a drift verdict in round {evidence.round}")
    share = round(len(significant) / len(judged), 12)
    fired = share >= threshold
    listed = ", ".join(f"{n} ({', '.join(features[n]) or 'labels'})" if n in features else n for n in significant)
    detail = (f"significant drift on {len(significant)} of {len(judged)} nodes with a verdict in round "
              f"{evidence.round} ({source}): share {_fmt(share)} {'>=' if fired else '<'} {_fmt(threshold)}"
              + (f": {listed}" if listed else ""))
    return TriggerResult(name, share, threshold, fired, detail, significant, features)


def _worst_node(threshold: float, evidence: Evidence) -> TriggerResult:
    name = "worst-node"
    nodes = {n: v for n, raw in _table(evidence.metrics.get("nodes")).items() if (v := _number(raw)) is not None}
    worst = _table(evidence.metrics.get("worst"))
    worst_value = _number(worst.get("value"))
    if not nodes and worst_value is None:
        return TriggerResult(name, None, threshold, False, f"no per-node accuracy recorded in round {evidence.round}")
    if worst_value is None or (nodes and min(nodes.values()) < worst_value):
        worst_node, worst_value = min(nodes.items(), key=lambda kv: (kv[1], kv[0]))
    else:
        worst_node = str(worst.get("node_id", ""))
    under = sorted(n for n, v in nodes.items() if v < threshold) or ([worst_node] if worst_value < threshold else [])
    fired = worst_value < threshold
    detail = (f"worst node {worst_node} at accuracy {_fmt(worst_value)} in round {evidence.round}, "
              f"{'under' if fired else 'not under'} {_fmt(threshold)}"
              + (f"; under it: {', '.join(under)}" if under else ""))
    return TriggerResult(name, worst_value, threshold, fired, detail, under)


def _strings(value: Any) -> list[str]:
    return sorted(v for v in value if isinstance(v, str)) if isinstance(value, list) else []


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:.4g}"


def decide(results: list[TriggerResult], evidence: Evidence, *, command: str, past: list[PastDecision],
           cooldown_s: float, now: datetime) -> Decision:
    """Retrain or not, and why: `check` never retrains; `watch` unless already acted on or cooling down."""
    fired = [r.name for r in results if r.fired]
    if not fired:
        return Decision(NO_RETRAIN, "nothing fired")
    if command == "check":
        return Decision(NO_RETRAIN, f"check only: fired {', '.join(fired)}; `fedgov monitor check` never retrains "
                                    "(`fedgov monitor watch` does)")
    acted = [p for p in past if p.evidence == evidence.key]
    if acted:
        return Decision(NO_RETRAIN, f"evidence already acted on: retraining was decided on it at seq {acted[-1].seq} "
                                    f"(run {evidence.run_id}, monitor.metrics seq {evidence.metrics_seq})")
    if past and cooldown_s > 0:
        until = past[-1].at + timedelta(seconds=cooldown_s)
        if now < until:
            return Decision(NO_RETRAIN, f"cooldown until {utc_now(until)}: retraining was decided at seq "
                                        f"{past[-1].seq} ({utc_now(past[-1].at)}); fired {', '.join(fired)}")
    return Decision(RETRAIN, f"fired {', '.join(fired)}")


def trigger_record(policy: Policy, evidence: Evidence, results: list[TriggerResult], decision: Decision,
                   command: str) -> dict[str, Any]:
    """The monitor.trigger payload (docs/governance.md)."""
    return {"policy": policy.to_record(), "policy_hash": policy.policy_hash, "evidence": evidence.to_record(),
            "triggers": [r.to_record() for r in results], "fired": [r.name for r in results if r.fired],
            "decision": decision.decision, "reason": decision.reason, "command": command}
