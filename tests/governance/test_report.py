"""`fedgov report`: a run's compliance report, read from a ledger written with the governance API.

Four nodes, two rounds. sim-a contributes to both; sim-b consents, contributes to round 1 (from a
node of an earlier fedgov: its reply holds no local accuracy and loss), then withdraws; sim-c never consented; sim-d's round-1 reply is rejected with a hostile reason, and
its team is hostile too: node-supplied strings must come out of the page as text, never markup.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from governance import consent_store
from governance import entry_types as et
from governance.consent import ConsentRecord
from governance.ledger import EntryDraft
from governance.report.html import render_html
from governance.report.model import (CONTRIBUTED, EXCLUDED, NOT_CANDIDATE, REJECTED, build_report)
from governance.report.source import LedgerFacts, Recorded, Verification, read_run
from tests.fedgov_command import run_fedgov

RUN, PURPOSE = "run-1", "cancer screening"
H0, H1, H2 = "0" * 64, "1" * 64, "2" * 64
HOSTILE_TEAM = "<script>alert('team')</script>"
HOSTILE_REASON = 'bad-signature: <img src=x onerror="alert(1)"><script>alert(2)</script>'
NODES = ("sim-a", "sim-b", "sim-c", "sim-d")
TEAMS = {"sim-a": "radiology", "sim-b": "oncology", "sim-c": "pathology", "sim-d": HOSTILE_TEAM}


def consent(node: str) -> ConsentRecord:
    return ConsentRecord(record_id=f"consent-{node}", principal=node, team=TEAMS[node], purpose=PURPOSE,
                         data_categories=["imaging", "diagnosis codes"], privacy_notice_version="v2",
                         privacy_notice_hash="a" * 64, collection_method="signed-form",
                         granted_at="2026-01-01T00:00:00.000000Z", jurisdiction="EU",
                         expires_at="2027-01-01T00:00:00.000000Z")


def reply(node: str, r: int, loss: float, accuracy: float | None = None) -> EntryDraft:
    """A recorded reply; `accuracy` None is a reply of an earlier fedgov, without the node's local evaluation."""
    local = {} if accuracy is None else {"local-loss": round(1 - accuracy, 3), "local-accuracy": accuracy}
    fingerprint = {"digest": f"{ord(node[-1]):064x}", "rows": 90, "schema_hash": "5" * 64, "content_hash": "6" * 64}
    if node != "sim-d":  # the others' fingerprints are of version 1, with label counts; sim-d's of version 2
        fingerprint["label_counts"] = {"0": 40, "1": 50}
    return EntryDraft(et.ROUND_REPLY, {"node_id": node, "team": TEAMS[node], "num_examples": 90,
                                       "metrics": {"train-loss": loss, **local, "num-examples": 90},
                                       "dataset_fingerprint": fingerprint, "update_digest": "7" * 64,
                                       "consent_record_id": f"consent-{node}"},
                      scope=et.node_scope(node), run_id=RUN, round=r, node_id=node)


def selection(r: int, excluded: dict[str, str], selected: list[str]) -> EntryDraft:
    checks = {n: {"state": excluded.get(n, "valid"), "record_id": None if n == "sim-c" else f"consent-{n}"}
              for n in NODES}
    return EntryDraft(et.ROUND_SELECTION, {"round": r, "seed": 7, "fraction": 1.0, "min_nodes": 1,
                                           "candidates": list(NODES), "checks": checks, "excluded": excluded,
                                           "selected": selected, "purpose": PURPOSE},
                      scope=et.run_scope(RUN), run_id=RUN, round=r)


def evaluated(r: int, model: str, loss: float, accuracy: float) -> EntryDraft:
    return EntryDraft(et.ROUND_EVALUATED, {"model_hash": model, "metrics": {"loss": loss, "accuracy": accuracy}},
                      scope=et.run_scope(RUN), run_id=RUN, round=r, model_hash=model)


@pytest.fixture
def recorded(ledger):
    """The two-round run above, written as the coordinator writes it, and signed."""
    ledger.append([EntryDraft(et.NODE_REGISTERED, {"node_id": n, "public_key": "00" * 32, "team": TEAMS[n],
                                                   "actor": "ops"}, scope=et.REGISTRY_SCOPE, node_id=n)
                   for n in NODES])
    consent_store.grant(ledger, [consent(n) for n in ("sim-a", "sim-b", "sim-d")], actor="dpo")
    run = et.run_scope(RUN)
    ledger.append([
        EntryDraft(et.RUN_STARTED, {"operator": "alice", "purpose": PURPOSE, "config": {"num-server-rounds": 2},
                                    "config_hash": "8" * 64, "app_hash": "9" * 64,
                                    "strategy": {"name": "fedavg"}, "seed": 7, "expected_nodes": 4,
                                    "initial_model_hash": H0}, scope=run, run_id=RUN, model_hash=H0),
        evaluated(0, H0, 0.69, 0.5),
        selection(1, {"sim-c": "no-consent"}, ["sim-a", "sim-b", "sim-d"]),
        reply("sim-a", 1, 0.6, 0.7), reply("sim-b", 1, 0.65),
        EntryDraft(et.ROUND_REJECTED, {"node_id": "sim-d", "flower_node_id": "4", "reason": HOSTILE_REASON},
                   scope=et.node_scope("sim-d"), run_id=RUN, round=1, node_id="sim-d"),
        EntryDraft(et.ROUND_AGGREGATED, {"input_model_hash": H0, "output_model_hash": H1,
                                         "contributors": ["sim-a", "sim-b"], "train_metrics": {"train-loss": 0.62}},
                   scope=run, run_id=RUN, round=1, model_hash=H1),
        evaluated(1, H1, 0.4, 0.8),
    ])
    ledger.checkpoint()
    consent_store.withdraw(ledger, "consent-sim-b", "patient request", actor="dpo")
    ledger.append([
        selection(2, {"sim-b": "withdrawn", "sim-c": "no-consent"}, ["sim-a", "sim-d"]),
        reply("sim-a", 2, 0.3, 0.85), reply("sim-d", 2, 0.35, 0.75),
        EntryDraft(et.ROUND_AGGREGATED, {"input_model_hash": H1, "output_model_hash": H2,
                                         "contributors": ["sim-a", "sim-d"], "train_metrics": {"train-loss": 0.33}},
                   scope=run, run_id=RUN, round=2, model_hash=H2),
        evaluated(2, H2, 0.2, 0.93),
        EntryDraft(et.RUN_FINISHED, {"status": "finished", "reason": "", "final_model_hash": H2},
                   scope=run, run_id=RUN),
    ])
    ledger.checkpoint()
    return ledger


def report_of(ledger):
    return build_report(read_run(ledger, RUN, generated_at="2026-06-01T00:00:00.000000Z"))


# -- the data ----------------------------------------------------------------------------------------


def test_participation_names_each_node_in_each_round_with_the_reason_it_was_left_out(recorded):
    report = report_of(recorded)
    grid = {n: {r: c.state for r, c in rounds.items()} for n, rounds in report.participation.items()}
    assert grid == {"sim-a": {1: CONTRIBUTED, 2: CONTRIBUTED}, "sim-b": {1: CONTRIBUTED, 2: EXCLUDED},
                    "sim-c": {1: EXCLUDED, 2: EXCLUDED}, "sim-d": {1: REJECTED, 2: CONTRIBUTED}}
    reasons = {(x.round, x.node): (x.kind, x.reason) for x in report.exclusions}
    assert reasons[(1, "sim-d")] == (REJECTED, HOSTILE_REASON)
    assert reasons[(2, "sim-b")] == (EXCLUDED, "consent: withdrawn")
    assert reasons[(1, "sim-c")] == (EXCLUDED, "consent: no-consent")
    assert NOT_CANDIDATE not in {c for rounds in grid.values() for c in rounds.values()}


def test_metrics_are_the_recorded_values_global_and_per_node(recorded):
    report = report_of(recorded)
    assert report.global_metrics == {"accuracy": [(0, 0.5), (1, 0.8), (2, 0.93)],
                                     "loss": [(0, 0.69), (1, 0.4), (2, 0.2)]}
    assert report.train_metrics == {"train-loss": [(1, 0.62), (2, 0.33)]}
    assert report.node_metrics["train-loss"] == {"sim-a": [(1, 0.6), (2, 0.3)], "sim-b": [(1, 0.65)],
                                                 "sim-d": [(2, 0.35)]}


def test_per_node_accuracy_and_loss_are_each_nodes_signed_evaluation_and_gaps_are_named(recorded):
    report = report_of(recorded)
    assert report.node_metrics["local-accuracy"] == {"sim-a": [(1, 0.7), (2, 0.85)], "sim-d": [(2, 0.75)]}
    assert report.node_metrics["local-loss"] == {"sim-a": [(1, 0.3), (2, 0.15)], "sim-d": [(2, 0.25)]}
    assert report.node_evaluation_missing == {"sim-b": [1]}  # a reply without them; sim-d's rejection is no reply


def test_consent_shows_what_each_selection_checked_and_every_record_with_its_withdrawal(recorded):
    report = report_of(recorded)
    assert report.consent_by_round["sim-b"] == {1: "valid", 2: "withdrawn"}
    assert report.consent_by_round["sim-c"] == {1: "no-consent", 2: "no-consent"}
    rows = {c.record_id: c for c in report.consent_records}
    assert set(rows) == {"consent-sim-a", "consent-sim-b", "consent-sim-d"}
    assert rows["consent-sim-b"].withdrawn_at and rows["consent-sim-b"].state_at_start == "valid"
    assert rows["consent-sim-b"].state_at_end == "withdrawn"


def test_label_counts_show_where_a_fingerprint_of_version_1_carries_them_and_not_sent_otherwise(recorded):
    report = report_of(recorded)
    assert {f.node: f.label_counts for f in report.fingerprints} == {
        "sim-a": {"0": 40, "1": 50}, "sim-b": {"0": 40, "1": 50}, "sim-d": None}
    section = render_html(report).split('id="fingerprints"')[1].split("</section>")[0]
    assert section.count("0: 40, 1: 50") == 2 and section.count("not sent") == 1


def test_fingerprints_lineage_and_verification_come_from_the_ledger(recorded):
    report = report_of(recorded)
    assert {(f.node, f.rounds[0], f.rows) for f in report.fingerprints} == {
        ("sim-a", 1, 90), ("sim-b", 1, 90), ("sim-d", 2, 90)}
    assert [(x.round, x.model_hash, x.parent_hash) for x in report.models] == [(0, H0, None), (1, H1, H0),
                                                                              (2, H2, H1)]
    assert [c.node for c in report.models[2].contributors] == ["sim-a", "sim-d"]
    assert report.verification.ok and report.run_fully_signed
    assert report.checkpoints[-1].tree_size > max(e.seq for e in recorded.query(run_id=RUN))
    assert all(len(c.root_hex) == 64 for c in report.checkpoints)


def test_the_art30_record_fills_what_is_recorded_and_says_what_is_not(recorded):
    items = {a.item: a for a in report_of(recorded).art30}
    assert items["purposes of the processing"].values == [PURPOSE]
    assert items["categories of personal data"].values == ["diagnosis codes", "imaging"]
    assert items["controller (name and contact details)"].values is None  # not in the ledger: not invented
    assert "EU" in items["transfers to third countries"].values[0]
    assert any("AES-256-GCM" in m for m in items["technical and organisational security measures (Art. 32)"].values)


def test_a_shredded_node_shows_as_erased_not_as_absent(recorded):
    recorded.shred("node:sim-a", actor="dpo", reason="Art. 17 request 12")
    report = report_of(recorded)
    assert {c.state for c in report.participation["sim-a"].values()} == {"erased"}
    assert report.shredded_nodes == ["sim-a"] and "sim-a" in report.consent_erased
    assert [c.team for c in report.models[1].contributors if c.node == "sim-a"] == ["erased"]


def test_build_report_is_pure_and_takes_hand_made_facts():
    facts = LedgerFacts(RUN, "ledger-x", "2026-06-01T00:00:00.000000Z", entries=[
        Recorded(0, et.RUN_STARTED, "2026-01-02T00:00:00.000000Z", RUN, None, "", {"purpose": PURPOSE}),
        Recorded(1, et.ROUND_FAILED, "2026-01-02T00:00:01.000000Z", RUN, 1, "", {"reason": "too few consented"}),
    ], consent=[], registrations=[], shreds=[], checkpoints=[], verification=Verification(False, "edited row 1"))
    report = build_report(facts)
    assert report.exclusions[0].kind == "failed" and report.exclusions[0].reason == "too few consented"
    assert dict(report.overview)["status"].startswith("not finished")
    page = render_html(report)
    assert "VERIFICATION FAILED: edited row 1" in page and 'data-chart="chart-participation"' in page


# -- the page ----------------------------------------------------------------------------------------


def test_the_page_has_every_section_and_chart_and_runs_no_script(recorded):
    page = render_html(report_of(recorded))
    for section in ("overview", "metrics", "participation", "consent", "fingerprints", "lineage", "verification",
                    "art30", "privacy-budget", "drift"):
        assert f'<section id="{section}">' in page
    charts = re.findall(r'data-chart="([^"]+)"', page)
    assert charts == ["chart-global-accuracy", "chart-global-loss", "chart-node-local-accuracy",
                      "chart-node-local-loss", "chart-node-train-loss", "chart-participation", "chart-consent",
                      "chart-lineage"]
    assert "<script" not in page.lower() and "onerror=" not in page.lower().replace("onerror=&quot;", "")
    assert "default-src 'none'" in page and "http://" not in page and "https://" not in page


def _chart(page: str, chart_id: str) -> str:
    return page.split(f'data-chart="{chart_id}"', 1)[1].split("</figure>", 1)[0]


def test_the_per_node_accuracy_chart_draws_each_nodes_rounds_and_the_table_says_what_is_not_recorded(recorded):
    page = render_html(report_of(recorded))
    chart = _chart(page, "chart-node-local-accuracy")
    assert chart.count("<circle") == 3 and "not recorded" not in chart  # sim-a rounds 1 and 2, sim-d round 2
    table = page.split("<h3>local-accuracy per node</h3>", 1)[1].split("</table>", 1)[0]
    rows = {row.split("</td>", 1)[0].removeprefix("<td>"): row for row in table.split("<tr>")[2:]}
    assert set(rows) == {"sim-a", "sim-b", "sim-d"}
    assert rows["sim-b"].count('<span class="nr">not recorded</span>') == 1  # round 1; round 2 it was excluded
    assert '<span class="num">0.85</span>' in rows["sim-a"]
    assert "sim-b (round 1)" in page.split('<section id="metrics">', 1)[1]


def test_a_run_recorded_before_nodes_sent_their_evaluation_says_not_recorded():
    old = {"node_id": "sim-a", "team": "t", "metrics": {"train-loss": 0.5, "num-examples": 9}}
    facts = LedgerFacts(RUN, "ledger-x", "2026-06-01T00:00:00.000000Z", entries=[
        Recorded(0, et.RUN_STARTED, "2026-01-02T00:00:00.000000Z", RUN, None, "", {"purpose": PURPOSE}),
        Recorded(1, et.ROUND_REPLY, "2026-01-02T00:00:01.000000Z", RUN, 1, "sim-a", old),
    ], consent=[], registrations=[], shreds=[], checkpoints=[], verification=Verification(True, "checked"))
    report = build_report(facts)
    assert "local-accuracy" not in report.node_metrics and report.node_evaluation_missing == {"sim-a": [1]}
    page = render_html(report)
    for chart_id in ("chart-node-local-accuracy", "chart-node-local-loss"):
        assert "not recorded: no node of this run reported it" in _chart(page, chart_id)
        assert "<circle" not in _chart(page, chart_id)
    assert "<circle" in _chart(page, "chart-node-train-loss")


def test_node_supplied_strings_appear_as_text(recorded):
    page = render_html(report_of(recorded))
    assert "&lt;script&gt;alert(&#x27;team&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "VERIFIED: checked" in page and "not recorded" in page


# -- the command -------------------------------------------------------------------------------------


def fedgov(workspace, *args: str):
    return run_fedgov(*args, env={"FEDGOV_HOME": str(workspace.path)})


def test_fedgov_report_writes_the_page_and_refuses_to_overwrite_without_force(recorded, workspace, tmp_path: Path):
    out = tmp_path / "report.html"
    result = fedgov(workspace, "report", RUN, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote the report of run {RUN} to {out}: 2 rounds, 4 nodes; ledger verified")
    assert out.read_text().endswith("</html>\n")
    again = fedgov(workspace, "report", RUN, "--out", str(out))
    assert (again.returncode, again.stderr) == (2, f"error: --out {out} exists; pass --force to replace it\n")
    out.write_text("old")
    assert fedgov(workspace, "report", RUN, "--out", str(out), "--force").returncode == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_an_unknown_run_is_an_error_naming_the_runs_there_are(recorded, workspace, tmp_path: Path):
    result = fedgov(workspace, "report", "run-9", "--out", str(tmp_path / "r.html"))
    assert result.returncode == 2
    assert result.stderr == f"error: no run 'run-9' in this ledger; the runs it records: {RUN}\n"
    assert not (tmp_path / "r.html").exists()


def test_a_ledger_that_does_not_verify_gets_a_report_that_says_so_and_exit_1(recorded, workspace, tmp_path: Path):
    from tests.governance.attacks import sql

    sql(workspace, "UPDATE fedgov_entries SET node_id = 'sim-z' WHERE seq = 1")
    out = tmp_path / "report.html"
    result = fedgov(workspace, "report", RUN, "--out", str(out))
    assert result.returncode == 1 and result.stderr.startswith("error: the ledger does not verify (")
    assert "VERIFICATION FAILED" in out.read_text()
