"""Drift figures: PSI and Jensen-Shannon distance with known values, alignment of suppressed bins, verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from governance.monitoring.drift import (EPSILON, NodeHistory, Thresholds, aligned, federation_drift, js_distance,
                                         node_drift, psi, verdict)


def test_psi_matches_a_hand_computation():
    # p = (.5, .3, .2), q = (.3, .4, .3): PSI = .2 ln(5/3) + (-.1) ln(3/4) + (-.1) ln(2/3)
    by_hand = 0.2 * math.log(0.5 / 0.3) + (-0.1) * math.log(0.3 / 0.4) + (-0.1) * math.log(0.2 / 0.3)
    assert psi([50, 30, 20], [30, 40, 30]) == pytest.approx(by_hand, abs=1e-12)
    assert by_hand == pytest.approx(0.171480, abs=1e-6)
    assert psi([5, 3, 2], [30, 40, 30]) == pytest.approx(by_hand)  # proportions, not counts


def test_psi_smooths_an_empty_bin_with_epsilon_then_renormalises():
    p = [1 / (1 + EPSILON), EPSILON / (1 + EPSILON)]
    by_hand = (p[0] - 0.5) * math.log(p[0] / 0.5) + (p[1] - 0.5) * math.log(p[1] / 0.5)
    assert psi([10, 0], [5, 5]) == pytest.approx(by_hand, rel=1e-12)
    assert psi([0, 0], [5, 5]) is None  # nothing to compare


def test_js_distance_matches_a_hand_computation_and_scipy():
    # p = (.5, .5), q = (1, 0): m = (.75, .25); KL(p||m) = .5 log2(2/3) + .5 log2(2); KL(q||m) = log2(4/3)
    jsd = (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25) + math.log2(1 / 0.75)) / 2
    assert js_distance([1, 1], [2, 0]) == pytest.approx(math.sqrt(jsd), abs=1e-12)
    assert math.sqrt(jsd) == pytest.approx(0.557923, abs=1e-6)
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_distance([3, 4], [3, 4]) == 0.0
    rng = np.random.default_rng(3)
    for _ in range(20):
        a, b = rng.integers(0, 50, 8), rng.integers(0, 50, 8)
        assert js_distance(a.tolist(), b.tolist()) == pytest.approx(jensenshannon(a, b, base=2), abs=1e-9)


def test_a_bin_suppressed_on_either_side_is_left_out_of_both_and_its_mass_kept_in_a_remainder():
    current, reference = [10, None, 20, 5], [12, 8, None, 6]
    a, b = aligned(current, reference, 40, 30)
    assert a == [10.0, 0.0, 0.0, 5.0, 25.0]  # 40 rows, 15 in bins visible on both sides
    assert b == [12.0, 0.0, 0.0, 6.0, 12.0]
    a, b = aligned([None, None], [None, None], 7, 7)
    assert a == b == [0.0, 0.0, 7.0] and psi(a, b) == 0.0


def test_verdicts_follow_the_thresholds_and_a_small_sample_gets_none():
    t = Thresholds(psi_moderate=0.1, psi_significant=0.25, js=0.1, min_count=30)
    assert verdict(0.3, 0.05, 100, t) == "significant"
    assert verdict(0.25, 0.05, 100, t) == "significant"
    assert verdict(0.12, 0.05, 100, t) == "moderate"
    assert verdict(0.05, 0.12, 100, t) == "moderate"  # JS alone: moderate
    assert verdict(0.05, 0.05, 100, t) == "none"
    assert verdict(0.9, 0.9, 29, t) == "insufficient"


FEATURES, LABELS = ("age", "dose"), ("a", "b")


def _summary(rows, age, dose, labels):
    return {"version": 1, "rows": rows, "cuts": "h", "min_count": 5, "noise": {"kind": "none", "scale": 0},
            "features": {"age": age, "dose": dose}, "labels": dict(zip(LABELS, labels))}


def test_a_node_whose_one_feature_moved_is_significant_and_names_it():
    ref = _summary(100, [40, 30, 30], [50, 50, None], [60, 40])
    now = _summary(100, [40, 30, 30], [5, 20, 75], [60, 40])
    payload = node_drift("sim-0001", 3, now, ref, 1, ref, FEATURES, LABELS, Thresholds())
    assert payload["verdict"] == "significant" and payload["drifting_features"] == ["dose"]
    assert payload["features"]["age"]["psi_reference"] == 0.0 and payload["features"]["age"]["verdict"] == "none"
    assert payload["features"]["dose"]["psi_reference"] > 0.25
    assert payload["labels"]["verdict"] == "none" and payload["reference_round"] == 1
    assert payload["thresholds"] == {"psi_moderate": 0.1, "psi_significant": 0.25, "js": 0.1, "min_count": 30}


def test_the_first_round_has_no_previous_figure_and_a_small_node_is_insufficient():
    ref = _summary(100, [40, 30, 30], [50, 50, None], [60, 40])
    payload = node_drift("sim-0001", 1, ref, ref, 1, None, FEATURES, LABELS, Thresholds())
    assert payload["verdict"] == "none" and payload["features"]["age"]["psi_previous"] is None
    small = _summary(12, [None, None, 12], [None, 12, None], [12, None])
    assert node_drift("n", 2, small, small, 1, small, FEATURES, LABELS, Thresholds())["verdict"] == "insufficient"


def test_the_federation_figure_pools_every_node():
    ref = _summary(100, [40, 30, 30], [50, 50, None], [60, 40])
    moved = _summary(100, [40, 30, 30], [5, 20, 75], [60, 40])
    histories = [NodeHistory("sim-0000", ref, ref, 1, ref), NodeHistory("sim-0001", moved, ref, 1, ref)]
    pooled = federation_drift(3, histories, FEATURES, LABELS, Thresholds())
    assert pooled["node_id"] == "federation" and pooled["rows"] == 200 and pooled["nodes"] == ["sim-0000", "sim-0001"]
    one = node_drift("sim-0001", 3, moved, ref, 1, ref, FEATURES, LABELS, Thresholds())
    assert 0 < pooled["features"]["dose"]["psi_reference"] < one["features"]["dose"]["psi_reference"]


def test_the_fused_figures_are_the_documented_psi_and_js_distance() -> None:
    """`figures` (what the recorder calls) gives what `psi` and `js_distance` give, on histograms with empty bins."""
    import random

    from governance.monitoring.drift import figures, js_distance, psi

    rng = random.Random(12)
    for _ in range(500):
        n = rng.randint(2, 12)
        a = [rng.choice([0, rng.randint(0, 60)]) for _ in range(n)]
        b = [rng.choice([0, rng.randint(0, 60)]) for _ in range(n)]
        fused, separate = figures(a, b), (psi(a, b), js_distance(a, b))
        if separate[0] is None:
            assert fused == (None, None)
        else:
            assert fused[0] == pytest.approx(separate[0], abs=1e-12)
            assert fused[1] == pytest.approx(separate[1], abs=1e-12)


def test_a_node_below_the_minimum_count_gets_no_verdict_and_no_figure() -> None:
    """On fewer rows than drift-min-count nothing is judged, so nothing is computed: null figures, `insufficient`."""
    from governance.monitoring.drift import Thresholds, compare

    few = compare([None, 3, None], [None, None, 4], [None, 3, None], (12, 12, 12), Thresholds(min_count=30))
    assert few == {"psi_reference": None, "js_reference": None, "psi_previous": None, "js_previous": None,
                   "verdict": "insufficient", "verdict_previous": "insufficient"}
    enough = compare([10, 20, 10], [10, 20, 10], None, (40, 40, None), Thresholds(min_count=30))
    assert enough["psi_reference"] == 0.0 and enough["verdict"] == "none" and enough["verdict_previous"] is None
