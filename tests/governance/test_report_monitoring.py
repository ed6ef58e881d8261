"""`fedgov report`'s monitoring and privacy sections: drift heatmap, per-node metrics, trigger timeline, ε per node.

A real ledger, written with the governance API as the coordinator and `fedgov monitor` write it
(docs/monitoring.md, docs/privacy.md): three nodes, three rounds, monitoring and DP on. sim-b's
data drifts from round 2 (feature f2), sim-c's model accuracy falls under the floor in round 3,
sim-c's privacy cap (3.5) excludes it from round 3; a `fedgov monitor check` after round 3 fires
on drift and starts run-2, a retraining run. A second run with monitoring, DP and SecAgg+ off
shows what each section says when nothing was recorded.
"""

from __future__ import annotations

import re

import pytest

from governance import entry_types as et
from governance.ledger import EntryDraft
from governance.privacy.accounting import epsilon
from governance.privacy.budget import node_budgets
from governance.privacy.events import Release
from governance.report.html import render_html
from governance.report.model import EXCLUDED, build_report
from governance.report.monitoring import (INSUFFICIENT, MODERATE, NONE, SIGNIFICANT, MonitoringState, build_drift,
                                          build_node_health)
from governance.report.privacy import build_privacy
from governance.report.source import LedgerFacts, Recorded, Verification, read_run
from governance.report.triggers import build_triggers

RUN, RETRAIN_RUN, PLAIN = "run-1", "run-2", "run-0"
NODES = ("sim-a", "sim-b", "sim-c")
SIGMA, DELTA, CAP = 2.0, 1e-5, 3.5  # ε after 2 releases 3.19, after 3 4.01
THRESHOLDS = {"psi_moderate": 0.1, "psi_significant": 0.25, "js": 0.1, "min_count": 30}
CONFIG = {"num-server-rounds": 3, "monitor": True, "fairness-floor": 0.6, "dp": "server-fixed",
          "dp-noise-multiplier": SIGMA, "dp-delta": DELTA, "privacy-max-epsilon": 0.0,
          "privacy-budgets": f"sim-c:{CAP}", "secagg": False}
HOSTILE = "<script>alert('f')</script>"


def drift(node: str, r: int, psi: dict[str, float], rows: int = 200) -> EntryDraft:
    """A monitor.drift entry; a feature's verdict by the default thresholds, the node's the worst."""
    def verdict(x: float) -> str:
        return SIGNIFICANT if x >= 0.25 else MODERATE if x >= 0.1 else NONE

    features = {f: {"psi_reference": x, "js_reference": x / 3, "psi_previous": None, "js_previous": None,
                    "verdict": verdict(x)} for f, x in psi.items()}
    worst = INSUFFICIENT if rows < 30 else max((verdict(x) for x in psi.values()),
                                               key=[NONE, MODERATE, SIGNIFICANT].index)
    return EntryDraft("monitor.drift", {
        "node_id": node, "round": r, "rows": rows, "reference_round": 1, "features": features,
        "labels": {"psi_reference": 0.01, "js_reference": 0.01}, "thresholds": THRESHOLDS, "verdict": worst,
        "drifting_features": [f for f, x in psi.items() if verdict(x) == SIGNIFICANT]},
        scope=et.run_scope(RUN), run_id=RUN, round=r, node_id="" if node == "federation" else node)


def metrics(r: int, nodes: dict[str, float], value: float, best: tuple[float, int]) -> EntryDraft:
    worst, top = min(nodes, key=nodes.get), max(nodes, key=nodes.get)
    return EntryDraft("monitor.metrics", {
        "round": r, "metric": "accuracy",
        "global": {"value": value, "best": best[0], "best_round": best[1], "baseline": 0.7,
                   "drop_from_best": round(best[0] - value, 6)},
        "nodes": nodes, "worst": {"node_id": worst, "value": nodes[worst]},
        "best_node": {"node_id": top, "value": nodes[top]}, "spread": round(nodes[top] - nodes[worst], 6),
        "floor": 0.6, "flagged": sorted(n for n, v in nodes.items() if v < 0.6),
        "drift": {"significant": ["sim-b"] if r >= 2 else [], "moderate": [], "share_significant":
                  (1 / 3) if r >= 2 else 0.0, "nodes_with_verdict": 3}}, scope=et.run_scope(RUN), run_id=RUN, round=r)


def privacy(r: int, participants: list[str], spent: dict[str, float]) -> EntryDraft:
    return EntryDraft("round.privacy", {
        "dp": "server-fixed", "mechanism": "gaussian", "noise_multiplier": SIGMA, "clipping_norm": 1.0,
        "delta": DELTA, "accountant": "rdp", "neighboring": "add/remove one node's update", "population": 3,
        "sample_size": len(participants), "amplification": "none claimed: selection is deterministic and recorded",
        "participants": participants, "epsilon_after": spent, "caps": {"sim-c": CAP}},
        scope=et.run_scope(RUN), run_id=RUN, round=r)


def selection(r: int, excluded: dict[str, str]) -> EntryDraft:
    """A selection as the privacy keeper gates it: a capped node's projection under "privacy"."""
    selected = [n for n in NODES if n not in excluded]
    projection = {"sim-c": {"epsilon_spent": eps(min(r - 1, 2)), "epsilon_next": eps(min(r, 3)), "epsilon_cap": CAP}}
    return EntryDraft(et.ROUND_SELECTION, {"round": r, "seed": 7, "fraction": 1.0, "min_nodes": 1,
                                           "candidates": list(NODES), "checks": {n: {"state": "valid"} for n in NODES},
                                           "excluded": excluded, "selected": selected, "purpose": "p",
                                           "privacy": projection},
                      scope=et.run_scope(RUN), run_id=RUN, round=r)


def eps(rounds: int) -> float:
    """ε of `rounds` Gaussian releases at SIGMA, DELTA: what the coordinator records (governance/privacy)."""
    return epsilon([SIGMA] * rounds, DELTA)


TRIGGER = {
    "policy": {"drift-share": {"min_share": 0.3}}, "policy_hash": "c" * 64,
    "evidence": {"run_id": RUN, "round": 3, "metrics_seq": 0, "drift_seqs": []},
    "triggers": [{"name": "drift-share", "statistic": 1 / 3, "threshold": 0.3, "fired": True,
                  "detail": "1 of 3 nodes drift significantly", "nodes": ["sim-b"], "features": {"sim-b": ["f2"]}},
                 {"name": "worst-node", "statistic": 0.5, "threshold": 0.4, "fired": False, "detail": "",
                  "nodes": [], "features": {}}],
    "fired": ["drift-share"], "decision": "retrain", "reason": "significant drift on 33% of nodes >= 30%",
    "command": "check"}


@pytest.fixture
def recorded(ledger):
    """run-0 (nothing monitored), run-1 (monitored, DP), the trigger on run-1, and run-2 it started."""
    ledger.append([EntryDraft(et.RUN_STARTED, {"purpose": "p", "config": {"monitor": False, "dp": "none",
                                                                          "secagg": False}},
                              scope=et.run_scope(PLAIN), run_id=PLAIN)])
    run = et.run_scope(RUN)
    ledger.append([EntryDraft(et.RUN_STARTED, {"purpose": "p", "config": CONFIG}, scope=run, run_id=RUN),
                   EntryDraft("monitor.reference", {"bins": 10, "source": "held-out reference split",
                                                    "features": ["f1", "f2"], "cuts": {}, "labels": ["0", "1"],
                                                    "cuts_hash": "d" * 64}, scope=run, run_id=RUN, round=1)])
    for r in (1, 2, 3):
        excluded = {"sim-c": "privacy-budget"} if r == 3 else {}
        taking_part = [n for n in NODES if n not in excluded]
        ledger.append([
            selection(r, excluded),
            drift("sim-a", r, {"f1": 0.01, "f2": 0.02}),
            drift("sim-b", r, {"f1": 0.05, "f2": 0.0 if r == 1 else 0.41}),
            *([drift("sim-c", r, {"f1": 0.12, "f2": 0.03}, rows=200 if r < 3 else 12)] if r < 3 else []),
            drift("federation", r, {"f1": 0.02, "f2": 0.0 if r == 1 else 0.15}, rows=600),
            privacy(r, taking_part, {n: eps(r if n != "sim-c" else min(r, 2)) for n in taking_part}),
            metrics(r, {"sim-a": 0.9, "sim-b": 0.8 - 0.1 * (r - 1), "sim-c": 0.7 if r < 3 else 0.5},
                    [0.8, 0.82, 0.75][r - 1], (0.82, 2) if r >= 2 else (0.8, 1)),
        ])
    seq = ledger.append([EntryDraft("monitor.trigger", TRIGGER, scope="monitor")])[0]
    ledger.append([EntryDraft("monitor.trigger", {**TRIGGER, "fired": [], "decision": "no-retrain",
                                                  "reason": "cooldown: run-2 started 0:05 ago", "command": "watch"},
                              scope="monitor")])
    ledger.append([EntryDraft(et.RUN_STARTED, {"purpose": "p", "config": {**CONFIG, "retrain-trigger": str(seq)},
                                               "trigger": {"seq": seq, "leaf_hash": "e" * 64}},
                              scope=et.run_scope(RETRAIN_RUN), run_id=RETRAIN_RUN)])
    ledger.checkpoint()
    return ledger


def report_of(ledger, run: str = RUN):
    return build_report(read_run(ledger, run, generated_at="2026-06-01T00:00:00.000000Z"))


# -- drift -------------------------------------------------------------------------------------------


def test_the_drift_heatmap_holds_each_nodes_recorded_verdict_and_largest_psi_per_round(recorded):
    d = report_of(recorded).drift
    assert d.not_recorded is None
    verdicts = {n: {r: c.verdict for r, c in by.items()} for n, by in d.cells.items()}
    assert verdicts == {"sim-a": {1: NONE, 2: NONE, 3: NONE}, "sim-b": {1: NONE, 2: SIGNIFICANT, 3: SIGNIFICANT},
                        "sim-c": {1: MODERATE, 2: MODERATE}}
    b2 = d.cells["sim-b"][2]
    assert (b2.max_psi, b2.max_psi_feature, b2.drifting, b2.reference_round) == (0.41, "f2", ["f2"], 1)
    assert d.cells["sim-c"][1].moderate == ["f1"] and d.cells["sim-c"][1].drifting == []
    assert {r: (c.verdict, c.max_psi) for r, c in d.federation.items()} == {
        1: (NONE, 0.02), 2: (MODERATE, 0.15), 3: (MODERATE, 0.15)}
    assert d.thresholds == THRESHOLDS and d.features == ["f1", "f2"] and "d" * 64 in d.reference


def test_a_small_sample_reads_insufficient_and_an_unknown_verdict_reads_unreadable():
    entries = [Recorded(1, "monitor.drift", "t", RUN, 1, "n1", {"node_id": "n1", "verdict": "insufficient",
                                                                  "rows": 4, "features": {}}),
               Recorded(2, "monitor.drift", "t", RUN, 1, "n2", {"node_id": "n2", "verdict": HOSTILE,
                                                                  "features": {"f": {"psi_reference": "x"}}}),
               Recorded(3, "monitor.drift", "t", RUN, 2, "n2", None)]
    d = build_drift(entries, MonitoringState(True))
    assert d.cells["n1"][1].verdict == INSUFFICIENT and d.cells["n1"][1].rows == 4
    assert d.cells["n2"][1].verdict == "unreadable" and d.cells["n2"][1].max_psi is None
    assert d.cells["n2"][2].verdict == "unreadable"  # erased


# -- per-node metrics --------------------------------------------------------------------------------


def test_per_node_metrics_show_worst_node_spread_and_name_the_node_under_the_floor(recorded):
    h = report_of(recorded).node_health
    assert [x.round for x in h.rounds] == [1, 2, 3]
    last = h.rounds[-1]
    assert last.worst == ("sim-c", 0.5) and last.best_node == ("sim-a", 0.9) and last.spread == pytest.approx(0.4)
    assert (last.value, last.best, last.best_round, last.drop_from_best) == (0.75, 0.82, 2, pytest.approx(0.07))
    assert last.flagged == ["sim-c"] and h.flagged == {"sim-c": [3]}
    assert last.drift_significant == ["sim-b"] and last.share_significant == pytest.approx(1 / 3)


# -- triggers ----------------------------------------------------------------------------------------


def test_the_trigger_timeline_holds_every_evaluation_of_the_runs_evidence_and_the_run_it_started(recorded):
    t = report_of(recorded).triggers
    assert [(e.command, e.decision, e.fired) for e in t.events] == [("check", "retrain", ["drift-share"]),
                                                                    ("watch", "no-retrain", [])]
    assert t.events[0].started_runs == [RETRAIN_RUN] and t.events[1].started_runs == []
    fired = t.events[0].checks[0]
    assert (fired.name, fired.statistic, fired.threshold, fired.fired, fired.features) == (
        "drift-share", pytest.approx(1 / 3), 0.3, True, {"sim-b": ["f2"]})
    assert t.started_by is None and t.not_recorded is None


def test_a_retraining_runs_report_names_the_trigger_that_started_it(recorded):
    t = report_of(recorded, RETRAIN_RUN).triggers
    assert t.started_by is not None and t.started_by.decision == "retrain"
    assert t.started_by.evidence_run == RUN and t.started_by_seq == t.started_by.seq
    assert t.events == [] and "nor fedgov monitor watch ran on run run-2" in t.not_recorded


def test_triggers_of_other_runs_are_not_this_runs():
    other = Recorded(5, "monitor.trigger", "t", "", None, "", {**TRIGGER, "evidence": {"run_id": "run-9"}})
    assert build_triggers(RUN, {}, [other], []).events == []


# -- privacy -----------------------------------------------------------------------------------------


def test_epsilon_per_node_is_recomputed_from_the_recorded_events_with_caps_and_budget_exclusions(recorded):
    report = report_of(recorded)
    p = report.privacy
    budgets = {b.node: b for b in p.budgets}
    assert budgets["sim-a"].rounds == [1, 2, 3] and budgets["sim-c"].rounds == [1, 2]
    assert budgets["sim-a"].total == pytest.approx(eps(3)) and budgets["sim-c"].total == pytest.approx(eps(2))
    assert all(b.agrees for b in p.budgets)
    assert budgets["sim-c"].cap == CAP and budgets["sim-a"].cap is None and p.run_cap is None
    assert budgets["sim-c"].excluded == [(3, f"ε {eps(2):.4g} now, {eps(3):.4g} after one more round > cap {CAP:g}")]
    assert budgets["sim-c"].remaining == pytest.approx(max(0, CAP - eps(2)))
    assert report.participation["sim-c"][3].state == EXCLUDED
    assert report.participation["sim-c"][3].reason == "privacy: privacy-budget"
    assert p.secagg == [] and "secagg = false" in p.secagg_not_recorded


def test_a_recorded_epsilon_that_the_events_do_not_give_is_shown_as_disagreeing():
    event = {"dp": "client-fixed", "noise_multiplier": 1.0, "delta": 1e-5, "participants": ["n1"],
             "epsilon_after": {"n1": 0.001}}
    p = build_privacy([Recorded(1, "round.privacy", "t", RUN, 1, "", event)], {"dp": "client-fixed"}, {})
    assert p.budgets[0].agrees is False and p.budgets[0].total > 1


def _release(seq: int, run: str, r: int, participants: list[str], sigma: object = SIGMA) -> Recorded:
    return Recorded(seq, "round.privacy", "t", run, r, "", {
        "dp": "server-fixed", "mechanism": "gaussian", "noise_multiplier": sigma, "clipping_norm": 1.0,
        "delta": DELTA, "population": 2, "selected": len(participants), "sample_size": len(participants),
        "participants": participants, "epsilon_after": {}, "caps": {}})


def test_a_nodes_budget_spans_runs_and_agrees_with_fedgov_privacy_budget():
    """n1 spent two releases in run-0; run-1's ε starts from there. The final figure is what `fedgov privacy
    budget` computes from the same releases (governance/privacy/budget.py)."""
    earlier = [_release(1, "run-0", 1, ["n1"]), _release(2, "run-0", 2, ["n1", "n2"])]
    mine = [_release(5, RUN, 1, ["n1", "n3"]), _release(6, RUN, 2, ["n1"])]
    p = build_privacy(mine, {"dp": "server-fixed"}, {}, earlier, RUN)
    budgets = {b.node: b for b in p.budgets}
    assert set(budgets) == {"n1", "n3"}  # n2 took no part in this run
    assert budgets["n1"].before == pytest.approx(eps(2)) and budgets["n3"].before == 0.0
    assert budgets["n1"].spent == [(1, pytest.approx(eps(3))), (2, pytest.approx(eps(4)))]
    official = {b.node_id: b.epsilon_spent for b in node_budgets(
        [Release.from_payload(e.run_id, e.round, e.payload) for e in [*earlier, *mine]], [])}
    assert budgets["n1"].total == pytest.approx(official["n1"]) and budgets["n3"].total == pytest.approx(official["n3"])


@pytest.mark.parametrize("sigma", [0.0, "1.0", None, float("inf")])
def test_a_release_that_cannot_be_accounted_is_named_not_read_as_nothing_spent(sigma):
    p = build_privacy([_release(1, RUN, 1, ["n1"]), _release(2, RUN, 2, ["n1"], sigma)], {"dp": "server-fixed"}, {})
    assert p.problem.startswith(f"round.privacy of run {RUN} round 2 cannot be accounted: a noise multiplier must be")
    assert p.budgets[0].spent == [(1, pytest.approx(eps(1)))]
    assert "cannot be accounted" in render_html(build_report(LedgerFacts(
        RUN, "l", "g", entries=[Recorded(0, et.RUN_STARTED, "t", RUN, None, "", {"config": {"dp": "server-fixed"}}),
                                _release(1, RUN, 1, ["n1"]), _release(2, RUN, 2, ["n1"], sigma)],
        consent=[], registrations=[], shreds=[], checkpoints=[], verification=Verification(True, "checked"))))


def test_secagg_participation_is_shown_per_round():
    p = build_privacy([Recorded(1, "round.secagg", "t", RUN, 1, "", {
        "protocol": "SecAgg+ (flwr SecAggPlusWorkflow, legacy API)", "num_shares": 3, "reconstruction_threshold": 2,
        "clipping_range": 8.0, "quantization_range": 4194304, "selected": ["a", "b", "c"],
        "stages": {"setup": ["a", "b", "c"], "share-keys": ["a", "b", "c"], "collect-masked-vectors": ["a", "b"],
                   "unmask": ["a", "b"]},
        "completed": ["a", "b"], "dropped": ["c"], "aggregate_hash": "f" * 64,
        "individual_updates_visible": False})], {"secagg": True, "dp": "none"}, {})
    [x] = p.secagg
    assert (x.completed, x.dropped, x.individual_updates_visible) == (["a", "b"], ["c"], False)
    assert x.stages == {"setup": 3, "share-keys": 3, "collect-masked-vectors": 2, "unmask": 2}
    assert p.secagg_not_recorded is None and "dp = none" in p.not_recorded


def test_the_page_shows_secagg_participation_per_round_and_a_round_without_an_aggregate():
    def secagg(seq: int, r: int, aggregate: str | None) -> Recorded:
        return Recorded(seq, "round.secagg", "t", RUN, r, "", {
            "protocol": "SecAgg+ (flwr SecAggPlusWorkflow, legacy API)", "num_shares": 3,
            "reconstruction_threshold": 2, "selected": ["a", "b", "c"], "stages": {"unmask": ["a", "b"]},
            "completed": ["a", "b"] if aggregate else [], "dropped": ["c"], "aggregate_hash": aggregate,
            "individual_updates_visible": False})

    page = render_html(build_report(LedgerFacts(RUN, "l", "g", entries=[
        Recorded(0, et.RUN_STARTED, "t", RUN, None, "", {"config": {"secagg": True, "dp": "none", "monitor": False}}),
        secagg(1, 1, "f" * 64), secagg(2, 2, None)], consent=[], registrations=[], shreds=[], checkpoints=[],
        verification=Verification(True, "checked"))))
    part = page.split("<h3>Secure aggregation (SecAgg+)</h3>", 1)[1].split("</section>", 1)[0]
    assert "<td>unmask 2</td>" in part and "f" * 64 in part and "none: the round built no aggregate" in part
    assert part.count("<td>no</td>") == 2 and "data-not-recorded" not in part


# -- what a run without any of it says ---------------------------------------------------------------


def test_a_run_without_monitoring_or_dp_says_exactly_what_was_not_recorded_and_why(recorded):
    report = report_of(recorded, PLAIN)
    assert report.drift.not_recorded.startswith("monitoring was off for this run (--no-monitor")
    assert report.node_health.not_recorded.startswith("monitoring was off for this run (--no-monitor")
    assert report.privacy.not_recorded.startswith("no differential privacy in this run (run config dp = none)")
    assert "secagg = false" in report.privacy.secagg_not_recorded
    page = render_html(report)
    for sid in ("drift", "node-metrics", "triggers", "privacy-budget", "secagg"):
        assert f'data-not-recorded="{sid}">Not recorded: ' in page
    assert "monitoring was off for this run (--no-monitor: run config monitor = false)" in page
    assert "no differential privacy in this run (run config dp = none)" in page


def test_a_run_of_an_earlier_fedgov_says_it_had_no_monitoring_and_no_dp():
    facts = LedgerFacts(RUN, "l", "2026-06-01T00:00:00.000000Z", entries=[
        Recorded(0, et.RUN_STARTED, "2026-01-02T00:00:00.000000Z", RUN, None, "", {"config": {"num-server-rounds": 1}})],
        consent=[], registrations=[], shreds=[], checkpoints=[], verification=Verification(True, "checked"))
    report = build_report(facts)
    assert "fedgov without monitoring" in report.drift.not_recorded
    assert "fedgov without" in report.privacy.not_recorded and "fedgov without SecAgg+" in report.privacy.secagg_not_recorded
    assert build_node_health([], MonitoringState(True)).not_recorded.startswith("monitoring was on, but no")


# -- the page ----------------------------------------------------------------------------------------


def _chart(page: str, chart_id: str) -> str:
    return page.split(f'data-chart="{chart_id}"', 1)[1].split("</figure>", 1)[0]


def test_the_page_draws_the_heatmap_the_health_chart_the_timeline_and_the_budget_chart(recorded):
    page = render_html(report_of(recorded))
    charts = re.findall(r'data-chart="([^"]+)"', page)
    assert charts[-4:] == ["chart-drift", "chart-node-health", "chart-triggers", "chart-privacy-budget"]
    heat = _chart(page, "chart-drift")
    # 4 rows (federation + 3 nodes) x 3 rounds; sim-c sent no summary in round 3
    assert heat.count('data-state="significant"') == 2 and heat.count('data-state="moderate"') == 4
    assert heat.count('data-state="none"') == 5 and heat.count('data-state=""') == 1
    assert ">0.41</text>" in heat and "drifting: f2" in heat and "federation (all nodes pooled)" in heat
    assert "#d84315" in heat  # the significant colour, in a cell and in the legend
    drift = page.split('<section id="drift">', 1)[1].split("</section>", 1)[0]
    assert "<td>sim-b</td><td>2</td><td>significant</td>" in drift and "(f2)" in drift
    health = page.split('<section id="node-metrics">', 1)[1].split("</section>", 1)[0]
    assert 'Flagged below the floor: sim-c (round 3)' in health
    assert '<span class="bad"><span class="num">0.5</span> below floor</span>' in health
    triggers = page.split('<section id="triggers">', 1)[1].split("</section>", 1)[0]
    assert "drift-share: 0.3333 vs 0.3, <strong>fired</strong>; sim-b: f2" in triggers
    assert "retraining run run-2" in _chart(page, "chart-triggers")
    assert "cooldown: run-2 started 0:05 ago" in triggers
    budget_html = page.split('<section id="privacy-budget">', 1)[1].split("</section>", 1)[0]
    assert f'<span class="num">{eps(3):.6g}</span>' in budget_html and "round 3</span>" in budget_html
    assert "<script" not in page.lower()


def test_a_retraining_runs_page_says_which_trigger_started_it(recorded):
    page = render_html(report_of(recorded, RETRAIN_RUN))
    assert "<strong>This run is a retraining run</strong>, started by monitor.trigger entry" in page
    assert "fired: drift-share; decision retrain: significant drift on 33% of nodes &gt;= 30%" in page


def test_hostile_strings_in_monitoring_entries_appear_as_text():
    facts = LedgerFacts(RUN, "l", "2026-06-01T00:00:00.000000Z", entries=[
        Recorded(0, et.RUN_STARTED, "2026-01-02T00:00:00.000000Z", RUN, None, "", {"config": {"monitor": True}}),
        Recorded(1, "monitor.drift", "t", RUN, 1, HOSTILE, {
            "node_id": HOSTILE, "verdict": "significant", "drifting_features": [HOSTILE],
            "features": {HOSTILE: {"psi_reference": 0.5, "verdict": "significant"}}}),
    ], consent=[], registrations=[], shreds=[], checkpoints=[], verification=Verification(True, "checked"),
        triggers=[Recorded(2, "monitor.trigger", "t", "", None, "", {**TRIGGER, "reason": HOSTILE,
                                                                    "fired": [HOSTILE]})])
    page = render_html(build_report(facts))
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;f&#x27;)&lt;/script&gt;" in page


# -- the page in headless Chromium -------------------------------------------------------------------

# Each new chart's own colour: significant drift cells, the global metric's line, a retrain marker, the
# first node's ε line.
CHART_INK = {"chart-drift": (0xd8, 0x43, 0x15), "chart-node-health": (31, 119, 180),
             "chart-triggers": (0x6a, 0x1b, 0x9a), "chart-privacy-budget": (31, 119, 180)}
WIDTH = 1200


def test_the_new_charts_open_in_headless_chromium_each_with_its_colour_and_ink(recorded, tmp_path):
    """As the demo's report is checked (tests/e2e/test_governed_rounds.py): each chart's box measured, the page
    screenshotted, each box holding its colour and ink, the page's empty right margin none."""
    from tests import headless_chromium
    from tests.png_pixels import ink, not_white, read_png

    page = tmp_path / "report.html"
    page.write_text(render_html(report_of(recorded)), encoding="utf-8")
    charts = {c["id"]: c for c in headless_chromium.measure(page, tmp_path, WIDTH)["charts"]}
    assert set(CHART_INK) <= set(charts)
    bottom = max(charts[c]["y"] + charts[c]["h"] for c in CHART_INK)
    pixels = read_png(headless_chromium.screenshot(page, tmp_path / "report.png", WIDTH, int(bottom) + 20))
    for chart_id, colour in CHART_INK.items():
        x, y, w, h = (int(charts[chart_id][k]) for k in ("x", "y", "w", "h"))
        assert w > 100 and h > 60, (chart_id, charts[chart_id])
        area = pixels[y:y + h, x:x + w]
        assert ink(area, colour) >= 30, f"{chart_id} shows none of its colour"
        assert not_white(area) > 0.005, f"{chart_id} is blank"
        margin = pixels[y:y + h, WIDTH - 40:WIDTH]
        assert ink(margin, colour) == 0 and not_white(margin) == 0.0
