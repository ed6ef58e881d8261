"""Degradation and fairness of a round: best, baseline, worst node, spread, the floor."""

from __future__ import annotations

from governance.monitoring.fairness import round_metrics


def test_the_round_is_judged_against_its_best_and_baseline_and_nodes_below_the_floor_are_flagged():
    history = [(0, 0.40), (1, 0.90), (2, 0.95), (3, 0.85)]
    nodes = {"sim-0000": 0.92, "sim-0005": 0.08, "sim-0003": 0.55, "sim-0001": 0.97}
    verdicts = {"sim-0000": "none", "sim-0001": "significant", "sim-0003": "moderate", "sim-0005": "insufficient"}
    m = round_metrics(3, history, nodes, 0.6, verdicts)
    assert m["global"] == {"value": 0.85, "best": 0.95, "best_round": 2, "baseline": 0.40, "baseline_round": 0,
                           "drop_from_best": 0.1}
    assert m["worst"] == {"node_id": "sim-0005", "value": 0.08}
    assert m["best_node"] == {"node_id": "sim-0001", "value": 0.97}
    assert m["spread"] == 0.89 and m["flagged"] == ["sim-0003", "sim-0005"]
    assert m["drift"] == {"significant": ["sim-0001"], "moderate": ["sim-0003"], "share_significant": 0.333333,
                          "nodes_with_verdict": 3}


def test_a_round_without_node_figures_records_none_for_worst_best_and_spread():
    m = round_metrics(1, [(0, 0.5), (1, 0.6)], {}, 0.6, {})
    assert m["worst"] is None and m["best_node"] is None and m["spread"] is None and m["flagged"] == []
    assert m["drift"]["share_significant"] == 0.0
