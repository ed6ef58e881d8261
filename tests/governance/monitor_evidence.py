"""Monitoring evidence written straight into a real ledger, in the documented formats (docs/governance.md):
what a monitored run records, without running one. The shapes are issue 12's:
`monitor.metrics` one per round, `monitor.drift` one per node per round plus `federation`.
"""

from __future__ import annotations

from governance import entry_types as et
from governance.ledger import EntryDraft, Ledger

FEATURES = ("mean radius", "mean texture", "mean area")


def drift_payload(node: str, round_: int, verdict: str, drifting: list[str] | None = None, rows: int = 50) -> dict:
    drifting = drifting or []
    features = {f: {"psi_reference": 0.4 if f in drifting else 0.01, "js_reference": 0.2 if f in drifting else 0.01,
                    "psi_previous": None, "js_previous": None,
                    "verdict": "significant" if f in drifting else "none"} for f in FEATURES}
    return {"node_id": node, "round": round_, "rows": rows, "reference_round": 1, "features": features,
            "labels": {"psi_reference": 0.0, "js_reference": 0.0},
            "thresholds": {"psi_moderate": 0.1, "psi_significant": 0.25, "js": 0.1, "min_count": 30},
            "verdict": verdict, "drifting_features": sorted(drifting)}


def metrics_payload(round_: int, value: float, best: float, nodes: dict[str, float], floor: float = 0.6,
                    significant: list[str] | None = None, with_verdict: int = 0) -> dict:
    worst = min(nodes.items(), key=lambda kv: kv[1])
    best_node = max(nodes.items(), key=lambda kv: kv[1])
    significant = significant or []
    return {"round": round_, "metric": "accuracy",
            "global": {"value": value, "best": best, "best_round": 1, "baseline": best, "drop_from_best": best - value},
            "nodes": nodes, "worst": {"node_id": worst[0], "value": worst[1]},
            "best_node": {"node_id": best_node[0], "value": best_node[1]}, "spread": best_node[1] - worst[1],
            "floor": floor, "flagged": sorted(n for n, v in nodes.items() if v < floor),
            "drift": {"significant": significant, "moderate": [],
                      "share_significant": len(significant) / with_verdict if with_verdict else 0.0,
                      "nodes_with_verdict": with_verdict}}


def record_round(ledger: Ledger, run_id: str, round_: int, *, value: float, best: float, nodes: dict[str, float],
                 drifting: dict[str, list[str]] | None = None, insufficient: tuple[str, ...] = ()) -> int:
    """One round's drift entries (every node of `nodes`) and its metrics entry; returns the metrics seq."""
    drifting = drifting or {}
    drafts = []
    for node in nodes:
        verdict = "insufficient" if node in insufficient else "significant" if node in drifting else "none"
        drafts.append(EntryDraft(et.MONITOR_DRIFT, drift_payload(node, round_, verdict, drifting.get(node)),
                                 et.run_scope(run_id), run_id=run_id, round=round_, node_id=node))
    drafts.append(EntryDraft(et.MONITOR_DRIFT, drift_payload("federation", round_, "moderate"), et.run_scope(run_id),
                             run_id=run_id, round=round_, node_id="federation"))
    judged = len(nodes) - len(insufficient)
    drafts.append(EntryDraft(et.MONITOR_METRICS, metrics_payload(round_, value, best, nodes,
                                                                 significant=sorted(drifting), with_verdict=judged),
                             et.run_scope(run_id), run_id=run_id, round=round_))
    return ledger.append(drafts, sign=True)[-1]


def ten_nodes(worst: float = 0.9) -> dict[str, float]:
    nodes = {f"sim-{i:04d}": 0.95 for i in range(10)}
    nodes["sim-0007"] = worst
    return nodes


DRIFTING = {"sim-0001": ["mean radius", "mean area"], "sim-0004": ["mean texture"], "sim-0008": ["mean radius"]}
