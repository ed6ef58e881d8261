"""Degradation and fairness of one round: the `monitor.metrics` payload, a pure function.

- Degradation: the global metric (central evaluation on the held-out split) against its best so
  far and its baseline (the run's first evaluation, round 0: the model the run started from);
  `drop_from_best` = best - value.
- Fairness: each node's local accuracy, the one it signed in its reply (`local-accuracy`: the
  model it received, on its own local test split, before training); the worst and best node,
  their spread (best - worst), and every node below the floor, flagged.
- Drift: which nodes had a significant or moderate verdict this round, and the share of nodes
  with a verdict (not "insufficient") whose verdict was significant.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence


def _extreme(values: Mapping[str, float], lowest: bool) -> dict[str, Any] | None:
    if not values:
        return None
    node = min(values, key=lambda n: (values[n], n)) if lowest else max(values, key=lambda n: (values[n], n))
    return {"node_id": node, "value": values[node]}


def drift_overview(verdicts: Mapping[str, str]) -> dict[str, Any]:
    """Nodes by drift verdict this round, and the significant share of nodes with a verdict."""
    judged = [n for n, v in verdicts.items() if v in ("none", "moderate", "significant")]
    significant = sorted(n for n, v in verdicts.items() if v == "significant")
    return {"significant": significant, "moderate": sorted(n for n, v in verdicts.items() if v == "moderate"),
            "share_significant": round(len(significant) / len(judged), 6) if judged else 0.0,
            "nodes_with_verdict": len(judged)}


def round_metrics(server_round: int, history: Sequence[tuple[int, float]], nodes: Mapping[str, float],
                  floor: float, verdicts: Mapping[str, str], metric: str = "accuracy") -> dict[str, Any]:
    """The `monitor.metrics` payload: `history` is every (round, global value) so far, this round's last."""
    if not history:
        raise ValueError("no global evaluation to judge")
    baseline_round, baseline = history[0]
    _, value = history[-1]
    best_round, best = max(history, key=lambda rv: (rv[1], -rv[0]))
    worst_node, best_node = _extreme(nodes, lowest=True), _extreme(nodes, lowest=False)
    return {
        "round": server_round, "metric": metric,
        "global": {"value": value, "best": best, "best_round": best_round, "baseline": baseline,
                   "baseline_round": baseline_round, "drop_from_best": round(best - value, 6)},
        "nodes": dict(sorted(nodes.items())),
        "worst": worst_node, "best_node": best_node,
        "spread": round(best_node["value"] - worst_node["value"], 6) if worst_node and best_node else None,
        "floor": floor, "flagged": sorted(n for n, v in nodes.items() if v < floor),
        "drift": drift_overview(verdicts),
    }
