"""Monitoring end to end: one real Flower simulation with drift, a hard team and a hostile summary, then the ledger.

10 nodes x 4 rounds on breast-cancer: sim-0001, sim-0004 and sim-0007 (30%) drift from round 3 on,
sim-0005's labels are rotated (the model fails that team), and sim-0002 signs a summary with a
negative count. 5 bins per feature, so a node's ~37 rows fill most bins above the minimum count.

Then audited retraining (issue 12, item 4) on that same run, as tests/e2e/test_retraining.py's policy sets it:
`fedgov monitor check` names the drifting nodes and their features, `fedgov monitor watch` launches exactly one
retraining run and holds its second check, and the ledger links that run (run.started, lineage, PROV) to the
monitor.trigger entry that caused it. The monitoring tests read only the monitored run's entries (by run id,
read once when it ends), so the retraining run cannot blur them.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from governance import entry_types as et
from governance.monitoring.drift import FEDERATION
from tests.e2e.test_governed_rounds import Run
from tests.e2e.test_retraining import Federation

pytestmark = pytest.mark.timeout(600)

DRIFTED = ["sim-0001", "sim-0004", "sim-0007"]
HARD, HOSTILE = "sim-0005", "sim-0002"


@pytest.fixture(scope="module")
def monitored(tmp_path_factory) -> Run:
    return Run(tmp_path_factory.mktemp("monitored"), "--nodes", "10", "--rounds", "4",
               "--drift", ",".join(f"{n}@3" for n in DRIFTED), "--hard", HARD, "--monitor-bins", "5",
               "--faults", "2:summary-negative")


@pytest.fixture(scope="module")
def watched(monitored) -> tuple[Federation, subprocess.CompletedProcess[str]]:
    """`fedgov monitor watch` over the monitored run: the first check retrains, the second is held."""
    fed = Federation(monitored.tmp)
    done = fed.fedgov("monitor", "watch", "--policy", str(fed.policy), "--run", monitored.run_id, "--interval", "1",
                      "--max-checks", "2")
    return fed, done


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


def test_the_operator_watching_the_run_reads_each_rounds_monitoring_line(monitored):
    """The console (and rounds.json) say per round what the ledger's monitor.metrics records."""
    lines = [line.strip() for line in monitored.result.stdout.splitlines() if line.strip().startswith("monitoring:")]
    assert len(lines) == 4
    assert lines[3].startswith(f"monitoring: significant drift on 3 of 9 nodes ({', '.join(DRIFTED)}); worst node {HARD} ")
    assert lines[3].endswith(f"; below 0.6: {HARD}")
    assert [f"monitoring: {r['monitoring']}" for r in monitored.rounds["rounds"]] == lines
    assert lines[0].startswith("monitoring: no significant drift (9 nodes judged)") and HARD in lines[0]


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


# -- audited retraining on this run's evidence (its last round, 4) ------------------------------------------------


def test_check_names_the_drifting_nodes_and_features(monitored):
    fed, run_id = Federation(monitored.tmp), monitored.run_id
    done = fed.fedgov("monitor", "check", "--policy", str(fed.policy), "--run", run_id, "--format", "json")
    shown = json.loads(done.stdout)
    drift = next(t for t in shown["triggers"] if t["name"] == "drift-share")
    # 3 of the 9 nodes with a verdict (sim-0002's replies are rejected: it has none)
    assert drift["fired"] and drift["statistic"] == round(3 / 9, 12) and drift["nodes"] == DRIFTED
    assert drift["features"] == {n: sorted(_drift(monitored, 4)[n]["drifting_features"]) for n in DRIFTED}
    assert all(drift["features"][node] for node in drift["nodes"])  # each named with its drifting features
    worst = next(t for t in shown["triggers"] if t["name"] == "worst-node")
    assert worst["fired"] and worst["nodes"] == [HARD], worst  # the hard team, and no other node, under 0.5
    assert shown["decision"] == "no-retrain" and shown["evidence"]["run_id"] == run_id
    [(_, recorded)] = [(e, p) for e, p in fed.entries(et.MONITOR_TRIGGER) if e.seq == shown["seq"]]
    assert recorded["command"] == "check" and recorded["fired"] == ["drift-share", "worst-node"], recorded["fired"]
    table = fed.fedgov("monitor", "check", "--policy", str(fed.policy), "--run", run_id).stdout
    for node in drift["nodes"]:
        assert f"  {node}: {', '.join(drift['features'][node])}" in table


def test_watch_launches_exactly_one_retraining_run_and_holds_the_second_check(watched):
    fed, done = watched
    assert done.stdout.count("launching the retraining run") == 1
    watch_entries = [p for _, p in fed.entries(et.MONITOR_TRIGGER) if p["command"] == "watch"]
    assert [p["decision"] for p in watch_entries] == ["retrain", "no-retrain"]
    assert watch_entries[1]["reason"].startswith("evidence already acted on")
    retraining = [p for _, p in fed.entries(et.RUN_STARTED) if "trigger" in p]
    assert len(retraining) == 1 and retraining[0]["purpose"] == "retraining"
    assert retraining[0]["config"]["retrain-trigger"] == str(retraining[0]["trigger"]["seq"])


def test_the_retraining_run_is_linked_to_its_trigger_in_the_ledger_and_lineage(monitored, watched):
    fed, _ = watched
    [(decided, payload)] = [(e, p) for e, p in fed.entries(et.MONITOR_TRIGGER) if p["decision"] == "retrain"]
    [(started, run)] = [(e, p) for e, p in fed.entries(et.RUN_STARTED) if "trigger" in p]
    assert run["trigger"] == {"seq": decided.seq, "leaf_hash": decided.leaf_hash.hex()}
    assert started.seq > decided.seq and payload["evidence"]["run_id"] == monitored.run_id != started.run_id
    [(finished, _)] = [(e, p) for e, p in fed.entries(et.ROUND_AGGREGATED) if e.run_id == started.run_id][-1:]
    tree = json.loads(fed.fedgov("lineage", "show", finished.model_hash, "--json").stdout)
    assert tree["run_id"] == started.run_id and tree["trigger"]["seq"] == decided.seq
    assert tree["trigger"]["fired"] == payload["fired"] and tree["trigger"]["decision"] == "retrain"
    prov = json.loads(fed.fedgov("lineage", "export").stdout)
    assert {"prov:activity": f"fedgov:round/{started.run_id}/0",
            "prov:starter": f"fedgov:trigger/{decided.seq}"} in prov["wasStartedBy"].values()
