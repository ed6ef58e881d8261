"""The triggers weighed against one round's evidence, and the decision: pure, no ledger."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from governance.monitoring.evidence import Evidence, PastDecision
from governance.monitoring.policy import parse_policy
from governance.monitoring.triggers import decide, evaluate, trigger_record
from tests.governance.monitor_evidence import DRIFTING, drift_payload, metrics_payload, ten_nodes

POLICY = parse_policy("cooldown = '1h'\n[triggers]\naccuracy_drop = 0.05\ndrift_share = 0.3\n"
                      "worst_node_below = 0.6\n")
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def evidence(value=0.93, best=0.95, worst=0.9, drifting=None, insufficient=()) -> Evidence:
    drifting = DRIFTING if drifting is None else drifting
    nodes = ten_nodes(worst)
    drift = {n: drift_payload(n, 3, "insufficient" if n in insufficient else "significant" if n in drifting
                              else "none", drifting.get(n)) for n in nodes}
    return Evidence("run-1", 3, 40, metrics_payload(3, value, best, nodes), drift, list(range(30, 40)))


def by_name(results):
    return {r.name: r for r in results}


def test_drift_on_30_percent_of_nodes_fires_and_names_nodes_and_features():
    drift = by_name(evaluate(POLICY, evidence()))["drift-share"]
    assert drift.fired and drift.statistic == 0.3 and drift.threshold == 0.3
    assert drift.nodes == ["sim-0001", "sim-0004", "sim-0008"]
    assert drift.features == {"sim-0001": ["mean area", "mean radius"], "sim-0004": ["mean texture"],
                              "sim-0008": ["mean radius"]}
    assert "3 of 10 nodes" in drift.detail and "sim-0004 (mean texture)" in drift.detail


def test_drift_below_the_share_does_not_fire():
    drift = by_name(evaluate(POLICY, evidence(drifting={"sim-0001": ["mean radius"]})))["drift-share"]
    assert not drift.fired and drift.statistic == 0.1 and drift.nodes == ["sim-0001"]


def test_nodes_with_too_few_rows_are_not_counted_in_the_share():
    # 2 of the 10 nodes are insufficient: 3 significant of 8 judged
    drift = by_name(evaluate(POLICY, evidence(insufficient=("sim-0002", "sim-0003"))))["drift-share"]
    assert drift.statistic == 3 / 8 and drift.fired


def test_no_node_with_a_verdict_is_no_statistic_not_zero():
    nodes = tuple(ten_nodes())
    drift = by_name(evaluate(POLICY, evidence(drifting={}, insufficient=nodes)))["drift-share"]
    assert drift.statistic is None and not drift.fired and "enough rows" in drift.detail


def test_accuracy_drop_fires_above_the_threshold_only():
    assert not by_name(evaluate(POLICY, evidence(value=0.92, best=0.95)))["accuracy-drop"].fired  # 0.03
    dropped = by_name(evaluate(POLICY, evidence(value=0.85, best=0.95)))["accuracy-drop"]
    assert dropped.fired and abs(dropped.statistic - 0.10) < 1e-9 and "best 0.95" in dropped.detail


def test_the_worst_node_under_its_floor_fires_and_is_named():
    worst = by_name(evaluate(POLICY, evidence(worst=0.41)))["worst-node"]
    assert worst.fired and worst.statistic == 0.41 and worst.nodes == ["sim-0007"]
    assert not by_name(evaluate(POLICY, evidence(worst=0.61)))["worst-node"].fired


def test_hostile_values_are_no_evidence_not_a_crash():
    ev = evidence()
    ev.metrics["global"] = {"value": "high", "best": float("nan")}
    ev.metrics["nodes"] = {"sim-0000": [1], "sim-0001": None}
    ev.metrics["worst"] = "x"
    results = by_name(evaluate(POLICY, ev))
    assert results["accuracy-drop"].statistic is None and not results["accuracy-drop"].fired
    assert results["worst-node"].statistic is None and not results["worst-node"].fired


def test_only_the_triggers_the_policy_sets_are_weighed():
    policy = parse_policy("[triggers]\nworst_node_below = 0.5\n")
    assert [r.name for r in evaluate(policy, evidence())] == ["worst-node"]


def test_check_never_retrains_but_says_what_fired():
    results = evaluate(POLICY, evidence())
    decision = decide(results, evidence(), command="check", past=[], cooldown_s=3600, now=NOW)
    assert decision.decision == "no-retrain" and "fired drift-share" in decision.reason
    assert "never retrains" in decision.reason


def test_watch_retrains_when_something_fired_and_nothing_holds_it():
    decision = decide(evaluate(POLICY, evidence()), evidence(), command="watch", past=[], cooldown_s=3600, now=NOW)
    assert decision.decision == "retrain" and decision.reason == "fired drift-share"


def test_nothing_fired_is_a_recorded_no():
    ev = evidence(drifting={})
    decision = decide(evaluate(POLICY, ev), ev, command="watch", past=[], cooldown_s=3600, now=NOW)
    assert (decision.decision, decision.reason) == ("no-retrain", "nothing fired")


def test_evidence_already_acted_on_is_not_acted_on_again_even_after_the_cooldown():
    past = [PastDecision(41, NOW - timedelta(days=3), ("run-1", 40))]
    decision = decide(evaluate(POLICY, evidence()), evidence(), command="watch", past=past, cooldown_s=3600, now=NOW)
    assert decision.decision == "no-retrain" and decision.reason.startswith("evidence already acted on")
    assert "seq 41" in decision.reason


def test_a_cooldown_holds_new_evidence_until_it_ends():
    past = [PastDecision(41, NOW - timedelta(minutes=20), ("run-0", 12))]
    held = decide(evaluate(POLICY, evidence()), evidence(), command="watch", past=past, cooldown_s=3600, now=NOW)
    assert held.decision == "no-retrain"
    assert held.reason.startswith("cooldown until 2026-11-30T12:40:00.000000Z") and "seq 41" in held.reason
    later = decide(evaluate(POLICY, evidence()), evidence(), command="watch", past=past, cooldown_s=3600,
                   now=NOW + timedelta(minutes=41))
    assert later.decision == "retrain"


def test_the_record_has_the_documented_shape():
    ev = evidence()
    results = evaluate(POLICY, ev)
    decision = decide(results, ev, command="watch", past=[], cooldown_s=3600, now=NOW)
    record = trigger_record(POLICY, ev, results, decision, "watch")
    assert set(record) == {"policy", "policy_hash", "evidence", "triggers", "fired", "decision", "reason", "command"}
    assert record["evidence"] == {"run_id": "run-1", "round": 3, "metrics_seq": 40, "drift_seqs": list(range(30, 40))}
    assert record["fired"] == ["drift-share"] and record["decision"] == "retrain"
    assert {t["name"] for t in record["triggers"]} == {"accuracy-drop", "drift-share", "worst-node"}
    from governance.verify.canonical import canonical_bytes

    canonical_bytes(record)  # no NaN, no odd types: the ledger can hold it
