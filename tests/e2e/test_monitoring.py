"""Monitoring end to end: one real Flower simulation with drift, a hard team and a hostile summary, then the ledger.

10 nodes x 4 rounds on breast-cancer: sim-0001, sim-0004 and sim-0007 (30%) drift from round 3 on,
sim-0005's labels are rotated (the model fails that team), and sim-0002 signs a summary with a
negative count. 5 bins per feature, so a node's ~37 rows fill most bins above the minimum count.
"""

from __future__ import annotations

import pytest

from governance import entry_types as et
from governance.monitoring.drift import FEDERATION
from tests.e2e.test_governed_rounds import Run

pytestmark = pytest.mark.timeout(600)

DRIFTED = ["sim-0001", "sim-0004", "sim-0007"]
HARD, HOSTILE = "sim-0005", "sim-0002"


@pytest.fixture(scope="module")
def monitored(tmp_path_factory) -> Run:
    return Run(tmp_path_factory.mktemp("monitored"), "--nodes", "10", "--rounds", "4",
               "--drift", ",".join(f"{n}@3" for n in DRIFTED), "--hard", HARD, "--monitor-bins", "5",
               "--faults", "2:summary-negative")


def _drift(run: Run, round_: int) -> dict[str, dict]:
    return {p["node_id"]: p for _, p in run.of(et.MONITOR_DRIFT, round_)}


def test_the_shared_bins_are_recorded_once(monitored):
    [(_, reference)] = monitored.of(et.MONITOR_REFERENCE)
    assert reference["bins"] == 5 and len(reference["features"]) == 30
    assert reference["labels"] == ["malignant", "benign"] and reference["source"].startswith("quantiles")
    for _, reply in monitored.of(et.ROUND_REPLY):
        assert reply["summary"]["cuts"] == reference["cuts_hash"]


def test_no_node_is_judged_to_drift_before_its_data_changes(monitored):
    for r in (1, 2):
        verdicts = {n: p["verdict"] for n, p in _drift(monitored, r).items()}
        assert set(verdicts) == {f"sim-{i:04d}" for i in range(10) if i != 2} | {FEDERATION}
        assert set(verdicts.values()) == {"none"}, verdicts


def test_drift_from_round_3_is_significant_for_exactly_the_drifted_nodes_and_names_their_features(monitored):
    for r in (3, 4):
        drift = _drift(monitored, r)
        significant = sorted(n for n, p in drift.items() if p["verdict"] == "significant")
        assert significant == DRIFTED, {n: p["verdict"] for n, p in drift.items()}
        for node in DRIFTED:
            payload = drift[node]
            assert payload["reference_round"] == 1 and payload["drifting_features"]
            feature = payload["drifting_features"][0]
            figures = payload["features"][feature]
            assert figures["verdict"] == "significant" and figures["psi_reference"] >= 0.25
            assert payload["thresholds"] == {"psi_moderate": 0.1, "psi_significant": 0.25, "js": 0.1, "min_count": 30}
    assert all(_drift(monitored, 3)[n]["features"][f]["psi_previous"] > 0.25
               for n in DRIFTED for f in _drift(monitored, 3)[n]["drifting_features"])  # a sudden change
    assert _drift(monitored, 3)[FEDERATION]["verdict"] in ("moderate", "significant")


def test_the_fairness_flag_names_the_hard_team(monitored):
    rounds = [p for _, p in monitored.of(et.MONITOR_METRICS)]
    assert [p["round"] for p in rounds] == [1, 2, 3, 4]
    for metrics in rounds:
        assert HARD in metrics["flagged"] and metrics["worst"]["node_id"] == HARD
        assert metrics["spread"] == pytest.approx(metrics["best_node"]["value"] - metrics["worst"]["value"], abs=1e-6)
    last = rounds[-1]
    assert last["flagged"] == [HARD] and last["global"]["value"] >= 0.9 and last["global"]["baseline_round"] == 0
    assert last["drift"]["significant"] == DRIFTED and last["drift"]["share_significant"] == pytest.approx(3 / 9, abs=1e-6)


def test_summaries_in_the_sealed_replies_expose_no_count_below_the_minimum(monitored):
    replies = monitored.of(et.ROUND_REPLY)
    assert len(replies) == 36
    for _, reply in replies:
        summary = reply["summary"]
        assert summary["min_count"] == 5 and summary["rows"] == reply["num_examples"]
        counts = [c for bins in summary["features"].values() for c in bins] + list(summary["labels"].values())
        assert all(c is None or c >= 5 for c in counts) and len(reply["summary_digest"]) == 64


def test_a_node_that_signs_a_hostile_summary_is_rejected_by_name_every_round(monitored):
    rejected = monitored.of(et.ROUND_REJECTED)
    assert [(e.round, p["node_id"]) for e, p in rejected] == [(r, HOSTILE) for r in (1, 2, 3, 4)]
    assert all(p["reason"].startswith("bad summary: ") and "is -3" in p["reason"] for _, p in rejected)
