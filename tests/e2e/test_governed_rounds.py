"""Governed rounds end to end: real Flower simulations, then what the ledger holds."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from governance import entry_types as et
from governance.identity import reply_signing_payload
from governance.ledger import Ledger
from governance.node_store import load_registry
from governance.verify.canonical import canonical_bytes
from governance.verify.selection import verify_selection
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE, run_fedgov

pytestmark = pytest.mark.timeout(600)


def fedgov(tmp: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = run_fedgov(*args, cwd=tmp, env={"FLWR_HOME": str(tmp / "flwr"), "FEDGOV_HOME": str(tmp / "workspace")},
                        timeout=600)
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


class Run:
    """One governed run and read access to its ledger."""

    def __init__(self, tmp: Path, *args: str, demo: bool = False) -> None:
        self.tmp = tmp
        if demo:
            self.result = fedgov(tmp, "demo")
            run_dir = tmp / "fedgov-runs" / "demo"
        else:
            self.result = fedgov(tmp, "sim", "run", "--out", str(tmp / "run"), "--trace-dir", str(tmp / "trace"),
                                 "--purpose", "cancer-screening", "--operator", "alice", *args)
            run_dir = tmp / "run"
        self.rounds = json.loads((run_dir / "rounds.json").read_text())
        self.run_id = self.rounds["run_id"]
        os.environ["FEDGOV_PASSPHRASE"] = PASSPHRASE
        with Ledger.open(Workspace.discover(tmp / "workspace")) as ledger:
            self.entries = [(e, ledger.read_payload(e)) for e in ledger.query(run_id=self.run_id)]
            self.registry = load_registry(ledger)
            self.all_types = [e.entry_type for e in ledger.query()]

    def of(self, entry_type: str, round_: int | None = None) -> list[tuple]:
        return [(e, p) for e, p in self.entries if e.entry_type == entry_type and (round_ is None or e.round == round_)]


@pytest.fixture(scope="module")
def ten(tmp_path_factory) -> Run:
    """`fedgov demo`, as `make demo` runs it: 10 IID nodes x 3 rounds of FedAvg on breast-cancer."""
    return Run(tmp_path_factory.mktemp("ten"), demo=True)


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory) -> Run:
    """5 nodes x 3 rounds: sim-0001 unsigned, sim-0002 withdraws before round 2,
    sim-0003 never consented, sim-0004 forges signatures, sim-0000's data drifts at round 2."""
    return Run(tmp_path_factory.mktemp("scenarios"), "--nodes", "5", "--rounds", "3",
               "--faults", "1:unsigned,4:forged", "--revoke", "sim-0002@2", "--no-consent", "sim-0003",
               "--drift", "sim-0000@2")


# -- the record of the demo's 10 x 3 run ----------------------------------------------------


def test_the_demo_reaches_090_accuracy_clearly_above_the_initial_model(ten):
    initial, final = ten.rounds["initial_eval"]["accuracy"], ten.rounds["rounds"][-1]["eval"]["accuracy"]
    assert final >= 0.90 and final > initial + 0.2


def test_the_demo_prints_rounds_summary_ledger_and_verify_result(ten):
    out = ten.result.stdout
    assert "round 3/3" in out and "federated run summary" in out and "wall time" in out
    assert "ledger entries of run" in out and "fedgov audit verify: checked" in out


def test_run_start_records_operator_purpose_code_config_strategy_and_seed(ten):
    import getpass

    from simulations.demo import DEMO_PURPOSE

    [(entry, start)] = ten.of(et.RUN_STARTED)
    assert start["operator"] == getpass.getuser() and start["purpose"] == DEMO_PURPOSE
    assert start["config_hash"] == hashlib.sha256(canonical_bytes(start["config"])).hexdigest()
    assert entry.config_hash == start["config_hash"]
    assert len(start["app_hash"]) == 64
    assert start["strategy"]["name"] == "fedavg" and start["seed"] == 42


def test_every_round_has_selection_replies_aggregation_evaluation(ten):
    for r in (1, 2, 3):
        assert len(ten.of(et.ROUND_SELECTION, r)) == 1
        assert len(ten.of(et.ROUND_REPLY, r)) == 10
        assert len(ten.of(et.ROUND_AGGREGATED, r)) == 1
        assert len(ten.of(et.ROUND_EVALUATED, r)) == 1
    [(_, end)] = ten.of(et.RUN_FINISHED)
    assert end["status"] == "finished"


def test_selection_records_can_be_recomputed_by_anyone(ten):
    for _, selection in ten.of(et.ROUND_SELECTION):
        verify_selection(selection)  # raises on any mismatch
        assert selection["seed"] == 42 and len(selection["selected"]) == 10
        assert all(check["state"] == "valid" for check in selection["checks"].values())


def test_every_reply_signature_verifies_offline_with_the_registered_key(ten):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    for entry, reply in ten.of(et.ROUND_REPLY):
        payload = reply_signing_payload(ten.run_id, entry.round, reply["update_digest"],
                                        reply["dataset_fingerprint"]["digest"], reply["metrics_digest"],
                                        reply.get("summary_digest"), reply["device"])
        key = Ed25519PublicKey.from_public_bytes(ten.registry.get(reply["node_id"]).public_key)
        key.verify(base64.b64decode(reply["signature"]), payload)
        assert reply["num_examples"] == reply["dataset_fingerprint"]["rows"]
        assert reply["consent_record_id"].startswith("consent-")


def test_no_reply_carries_its_nodes_exact_label_counts(ten):
    """The dataset fingerprint a node signs (version 2) holds hashes and a row count: the label distribution
    travels only in the privacy-filtered summary (docs/governance.md, "Dataset fingerprints")."""
    prints = [reply["dataset_fingerprint"] for _, reply in ten.of(et.ROUND_REPLY)]
    assert len(prints) == 30 and all(set(fp) == {"content_hash", "schema_hash", "rows", "digest"} for fp in prints)


def test_every_reply_records_the_device_its_node_signed_it_trained_on_in_the_ledger_and_rounds_json(ten):
    assert [reply["device"] for _, reply in ten.of(et.ROUND_REPLY)] == ["cpu"] * 30  # the demo trains on the CPU
    for rnd in ten.rounds["rounds"]:
        assert [reply["device"] for reply in rnd["replies"]] == ["cpu"] * 10


def test_every_reply_carries_the_nodes_signed_loss_and_accuracy_of_the_model_it_received(ten):
    """Measured on the node's own local test split before it trained; the signature covers them (metrics_digest)."""
    from governance.digests import metrics_digest

    for _, reply in ten.of(et.ROUND_REPLY):
        metrics = reply["metrics"]
        assert 0.0 <= metrics["local-accuracy"] <= 1.0 and metrics["local-loss"] >= 0.0
        assert metrics_digest(metrics) == reply["metrics_digest"]
    for r in (1, 2, 3):  # the model each round received is the previous round's: nodes see it improve
        [(_, agg)] = ten.of(et.ROUND_AGGREGATED, r)
        assert 0.0 <= agg["train_metrics"]["local-accuracy"] <= 1.0
    first = [p["metrics"]["local-accuracy"] for _, p in ten.of(et.ROUND_REPLY, 1)]
    last = [p["metrics"]["local-accuracy"] for _, p in ten.of(et.ROUND_REPLY, 3)]
    assert sum(last) / len(last) > sum(first) / len(first)


def test_aggregations_chain_each_round_to_the_previous_model(ten):
    [(_, start)] = ten.of(et.RUN_STARTED)
    parent = start["initial_model_hash"]
    for r in (1, 2, 3):
        [(entry, agg)] = ten.of(et.ROUND_AGGREGATED, r)
        assert agg["input_model_hash"] == parent and entry.model_hash == agg["output_model_hash"]
        assert len(agg["contributors"]) == 10
        parent = agg["output_model_hash"]


def test_a_checkpoint_is_signed_at_the_end_of_every_round(ten):
    result = fedgov(ten.tmp, "audit", "verify")
    checkpoints = int(result.stdout.split(" entries, ")[1].split(" checkpoints")[0])
    assert checkpoints >= 1 + 4 + 1  # genesis, rounds 0..3, run end


def test_audit_verify_passes_after_the_run(ten):
    assert fedgov(ten.tmp, "audit", "verify").stdout.startswith("checked ")


def test_the_archived_final_model_is_fetched_and_matches_its_hash(ten, tmp_path):
    from governance.digests import arrays_digest

    [(_, agg)] = ten.of(et.ROUND_AGGREGATED, 3)
    fedgov(ten.tmp, "model", "get", agg["output_model_hash"][:10], "--out", str(tmp_path / "m.npz"))
    import numpy as np

    with np.load(tmp_path / "m.npz") as f:
        assert arrays_digest([(k, f[k]) for k in f.files]) == agg["output_model_hash"]


def test_lineage_affected_lists_every_model_from_the_first_contribution(ten):
    result = fedgov(ten.tmp, "lineage", "affected", "--node", "sim-0004", "--format", "json")
    outputs = [p["output_model_hash"] for _, p in sorted(ten.of(et.ROUND_AGGREGATED), key=lambda ep: ep[0].round)]
    assert [row["model_hash"] for row in json.loads(result.stdout)] == outputs  # not the initial model


def test_prov_json_export_is_read_by_the_prov_package(ten, tmp_path):
    from prov.model import ProvDocument

    fedgov(ten.tmp, "lineage", "export", "--format", "prov-json", "--out", str(tmp_path / "prov.json"))
    doc = ProvDocument.deserialize(content=(tmp_path / "prov.json").read_text(), format="json")
    kinds = [type(r).__name__ for r in doc.get_records()]
    assert kinds.count("ProvGeneration") == 4  # initial model and three rounds
    assert kinds.count("ProvAttribution") == 30  # every update, to its node


def test_lineage_show_prints_the_tree_with_contributors(ten):
    [(_, agg)] = ten.of(et.ROUND_AGGREGATED, 2)
    tree = json.loads(fedgov(ten.tmp, "lineage", "show", agg["output_model_hash"], "--json").stdout)
    assert tree["round"] == 2 and len(tree["contributors"]) == 10
    assert tree["parent"]["round"] == 1 and tree["parent"]["parent"]["round"] == 0


# -- scenarios -----------------------------------------------------------------------------


def test_a_node_without_consent_is_never_contacted(scenarios):
    for _, selection in scenarios.of(et.ROUND_SELECTION):
        assert "sim-0003" not in selection["selected"]
        assert selection["excluded"]["sim-0003"] == "no-consent"
    assert not [1 for _, p in scenarios.entries if p.get("node_id") == "sim-0003"]
    assert not list((scenarios.tmp / "trace").glob("node-3-*"))  # partition 3 never trained


def test_consent_withdrawn_mid_run_excludes_the_node_from_the_next_round_on(scenarios):
    selections = {e.round: p for e, p in scenarios.of(et.ROUND_SELECTION)}
    assert "sim-0002" in selections[1]["selected"]
    for r in (2, 3):
        assert "sim-0002" not in selections[r]["selected"]
        assert selections[r]["excluded"]["sim-0002"] == "withdrawn"
    assert et.CONSENT_WITHDRAWN in scenarios.all_types
    assert {e.round for e, p in scenarios.of(et.ROUND_REPLY) if p["node_id"] == "sim-0002"} == {1}


def test_unsigned_and_forged_updates_are_rejected_and_named(scenarios):
    rejected = {(e.round, p["node_id"]): p["reason"] for e, p in scenarios.of(et.ROUND_REJECTED)}
    for r in (1, 2, 3):
        assert rejected[(r, "sim-0001")].startswith("unsigned")
        assert rejected[(r, "sim-0004")].startswith("bad-signature")
    for _, agg in scenarios.of(et.ROUND_AGGREGATED):
        assert not {"sim-0001", "sim-0004"} & set(agg["contributors"])


def test_a_node_whose_data_changes_records_a_new_fingerprint(scenarios):
    prints = {(e.round, p["node_id"]): p["dataset_fingerprint"]["digest"] for e, p in scenarios.of(et.ROUND_REPLY)}
    assert prints[(1, "sim-0000")] != prints[(2, "sim-0000")] == prints[(3, "sim-0000")]
    assert prints[(1, "sim-0002")] is not None
    assert prints[(1, "sim-0000")] != prints[(1, "sim-0002")]


def test_unchanged_data_keeps_its_fingerprint(ten):
    prints = {}
    for e, p in ten.of(et.ROUND_REPLY):
        prints.setdefault(p["node_id"], set()).add(p["dataset_fingerprint"]["digest"])
    assert all(len(digests) == 1 for digests in prints.values())


def test_lineage_affected_is_empty_for_a_node_that_never_contributed(scenarios):
    result = fedgov(scenarios.tmp, "lineage", "affected", "--node", "sim-0001", "--format", "json")
    assert json.loads(result.stdout) == []


def test_audit_verify_passes_after_the_scenarios(scenarios):
    fedgov(scenarios.tmp, "audit", "verify")


def test_a_run_where_too_few_nodes_consent_fails_recorded(tmp_path):
    result = fedgov(tmp_path, "sim", "run", "--out", str(tmp_path / "run"), "--nodes", "3", "--rounds", "1",
                    "--no-consent", "sim-0000,sim-0001", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: round 1: 1 of 3 candidate nodes have valid consent")
    assert "Traceback" not in result.stderr
    with Ledger.open(Workspace.discover(tmp_path / "workspace")) as ledger:
        types = [e.entry_type for e in ledger.query()]
        [end] = [ledger.read_payload(e) for e in ledger.query(entry_type=et.RUN_FINISHED)]
    assert et.ROUND_FAILED in types and et.ROUND_REPLY not in types
    assert end["status"] == "failed"


# -- hostile nodes: no reply ends the run ------------------------------------------------------

@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Run:
    """10 nodes x 2 rounds; five send replies that used to end the run or take the average, three
    more send a NaN, a record and a metric nobody asked for; two are honest."""
    return Run(tmp_path_factory.mktemp("hostile"), "--nodes", "10", "--rounds", "2",
               "--faults", "0:bad-npy,1:inflated-examples,2:huge-metric,3:deep-fingerprint,4:foreign-stype,"
               "7:nan,8:extra-record,9:extra-metric")


@pytest.mark.parametrize("node, reason", [
    ("sim-0000", "array 'net.0.weight' is not a valid .npy array (ValueError)"),
    ("sim-0001", "num-examples 1000000 disagrees with the"),
    ("sim-0002", "metric 'train-loss' is outside ±(2^53-1)"),
    ("sim-0003", "bad governance statement: RecursionError"),
    ("sim-0004", "array 'net.0.weight' is serialized as 'torch.Tensor', not numpy.ndarray"),
    ("sim-0007", "array 'net.0.weight' holds NaN or Inf"),
    ("sim-0008", "unexpected record 'rows'"),
    ("sim-0009", "metric keys ['local-accuracy', 'local-loss', 'num-examples', 'partition-size-leak', 'train-loss'] "
                 "differ"),
])
def test_a_hostile_reply_is_a_named_rejection_and_the_run_goes_on(hostile, node, reason):
    rejected = {(e.round, p["node_id"]): p["reason"] for e, p in hostile.of(et.ROUND_REJECTED)}
    for r in (1, 2):
        assert rejected[(r, node)].startswith(reason), rejected[(r, node)]


def test_the_hostile_run_finishes_with_the_honest_nodes_alone(hostile):
    for _, agg in hostile.of(et.ROUND_AGGREGATED):
        assert set(agg["contributors"]) == {"sim-0005", "sim-0006"}
    assert all(rnd["status"] == "ok" for rnd in hostile.rounds["rounds"])
    assert [p["status"] for _, p in hostile.of(et.RUN_FINISHED)] == ["finished"]
    assert hostile.rounds["rounds"][-1]["eval"]["accuracy"] > hostile.rounds["initial_eval"]["accuracy"]


def test_the_selection_names_the_consent_record_each_node_was_selected_under(ten):
    for e, selection in ten.of(et.ROUND_SELECTION):
        named = {node: selection["checks"][node]["record_id"] for node in selection["selected"]}
        assert all(named.values())
        replies = {p["node_id"]: p["consent_record_id"] for _, p in ten.of(et.ROUND_REPLY, e.round)}
        assert replies == {node: named[node] for node in replies}


def test_the_console_names_nodes_by_their_fedgov_id_and_prints_the_run_id(hostile):
    out = hostile.result.stdout
    assert f"run {hostile.run_id}: 10 nodes registered; training starts" in out
    assert "round 1/2: training 10 selected nodes…" in out
    assert out.startswith(f"run {hostile.run_id}: preparing 10 simulated nodes x 2 rounds: enrolling the nodes while "
                          "Flower's Simulation Engine starts…")
    assert f"run {hostile.run_id}: 10 simulated nodes enrolled in" in out
    assert "starting Ray on this machine's" in out and "for 10 virtual nodes (1 CPU per node" in out
    assert any(line.strip().startswith("rejected sim-0000 (Flower node ") for line in out.splitlines())
    assert f"run {hostile.run_id}: 2 rounds, 0 failed" in out


def test_the_console_shows_how_many_nodes_replied_while_a_round_waits(hostile):
    """Captured output is not a terminal: sparse plain lines (server/progress.py), counting the replies of the
    round's selected nodes, never down; a round that waited its first second or more shows at least its last."""
    import re

    shown: dict[int, list[tuple[int, int]]] = {}
    for line in hostile.result.stdout.splitlines():
        match = re.fullmatch(r"round (\d+)/2: (\d+) of (\d+) nodes replied \((\d+\.\d) s\)", line)
        if match:
            shown.setdefault(int(match[1]), []).append((int(match[2]), int(match[3])))
    for rnd in hostile.rounds["rounds"]:
        counts = shown.get(rnd["round"], [])
        assert all(total == len(rnd["selected"]) and 0 <= answered <= total for answered, total in counts)
        assert [answered for answered, _ in counts] == sorted(answered for answered, _ in counts)
        assert len(counts) <= 4 + int(rnd["seconds"] // 10)  # quarters, and one line per quiet 10 s
    assert hostile.rounds["rounds"][0]["seconds"] < 3 or shown.get(1), hostile.result.stdout[:3000]


# -- the compliance report of the demo's run (fedgov report), opened in headless Chromium -----------------

REPORT_WIDTH = 1200


@pytest.fixture(scope="module")
def ten_report(ten, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = fedgov(ten.tmp, "report", ten.run_id, "--out", str(out))
    assert result.stdout.startswith(f"wrote the report of run {ten.run_id} to {out}: 3 rounds, 10 nodes; "
                                    "ledger verified")
    return out


def test_the_report_holds_the_runs_recorded_values(ten, ten_report):
    page = ten_report.read_text(encoding="utf-8")
    [(_, start)] = ten.of(et.RUN_STARTED)
    assert start["purpose"] in page and start["config_hash"] in page and start["initial_model_hash"] in page
    for entry, evaluation in ten.of(et.ROUND_EVALUATED):  # the global metrics table, as %.6g
        assert f'<td>{entry.round}</td><td><span class="num">{evaluation["metrics"]["accuracy"]:.6g}</span>' in page
    for _, reply in ten.of(et.ROUND_REPLY):
        assert reply["node_id"] in page and reply["dataset_fingerprint"]["digest"] in page
        assert f'{reply["metrics"]["train-loss"]:.6g}' in page
    for _, agg in ten.of(et.ROUND_AGGREGATED):
        assert agg["output_model_hash"] in page
    # per-node accuracy: every node's signed value for every round, as a point of its chart and in its table
    chart = page.split('data-chart="chart-node-local-accuracy"', 1)[1].split("</figure>", 1)[0]
    assert chart.count("<circle") == 30 and "not recorded" not in chart
    table = page.split("<h3>local-accuracy per node</h3>", 1)[1].split("</table>", 1)[0]
    for _, reply in ten.of(et.ROUND_REPLY):
        assert f'<span class="num">{reply["metrics"]["local-accuracy"]:.6g}</span>' in table
    assert "not recorded" not in table
    root = fedgov(ten.tmp, "audit", "verify").stdout.split(", root ")[1].split()[0]
    assert "VERIFIED: checked" in page and root in page
    assert page.count('data-state="contributed"') == 30  # 10 nodes x 3 rounds in the participation grid
    for section in ("metrics", "participation", "consent", "fingerprints", "lineage", "verification", "art30",
                    "drift", "node-metrics", "triggers", "privacy-budget"):
        assert f'<section id="{section}">' in page


def test_the_report_draws_the_runs_drift_verdicts_and_per_node_metrics(ten, ten_report):
    """With monitoring on (the run config's default): one heatmap cell per monitor.drift entry, in its verdict,
    and each round's worst node and flagged nodes from monitor.metrics; without it, the sections say why."""
    page = ten_report.read_text(encoding="utf-8")
    drift, metrics = ten.of("monitor.drift"), ten.of("monitor.metrics")
    if not drift:  # a build without monitoring: each section says so, never blank
        assert 'data-not-recorded="drift">Not recorded: ' in page
        assert 'data-not-recorded="node-metrics">Not recorded: ' in page
        return
    heat = page.split('data-chart="chart-drift"', 1)[1].split("</figure>", 1)[0]
    for verdict in ("none", "moderate", "significant", "insufficient"):
        assert heat.count(f'data-state="{verdict}"') == sum(1 for _, p in drift if p["verdict"] == verdict)
    assert len(drift) == 33  # 10 nodes x 3 rounds, and the federation-wide figure of each round
    section = page.split('<section id="node-metrics">', 1)[1].split("</section>", 1)[0]
    for _, m in metrics:
        assert f'{m["worst"]["node_id"]} <span class="num">{m["worst"]["value"]:.6g}</span>' in section
        for node in m["flagged"]:
            assert node in section.split("Flagged below the floor: ", 1)[1].split("</p>", 1)[0]
    assert 'data-not-recorded="triggers">' in page and 'data-not-recorded="privacy-budget">' in page


# What each chart draws in its own colour: the first series, "contributed" and "valid" cells, model boxes.
CHART_INK = {"chart-global-accuracy": (31, 119, 180), "chart-global-loss": (31, 119, 180),
             "chart-node-local-accuracy": (31, 119, 180), "chart-node-local-loss": (31, 119, 180),
             "chart-node-train-loss": (31, 119, 180), "chart-participation": (46, 125, 50),
             "chart-consent": (46, 125, 50), "chart-lineage": (51, 103, 214)}


def _ink(pixels, colour, tolerance: int = 24) -> int:
    """How many pixels are within `tolerance` of `colour` on every channel."""
    import numpy as np

    return int(np.all(np.abs(pixels[..., :3].astype(int) - colour) <= tolerance, axis=-1).sum())


def _not_white(pixels) -> float:
    import numpy as np

    return float(np.any(pixels[..., :3] < 235, axis=-1).mean())


# With monitoring on: the heatmap's cells ("none": the demo's nodes do not drift) and the global metric's line.
MONITOR_INK = {"chart-drift": (165, 214, 167), "chart-node-health": (31, 119, 180)}


def test_the_report_opens_in_headless_chromium_with_every_chart_drawn(ten, ten_report, tmp_path):
    """Layout measured once (each chart's SVG box), the page screenshotted once, each box checked for its ink.

    Two runs of the real page rather than one page per chart: what is checked is the report as a
    reader opens it. A blank box would have no pixel of its chart's colour and almost no ink; the
    page's empty right margin beside each chart is checked the same way and must count as blank.
    """
    from tests import headless_chromium
    from tests.png_pixels import read_png

    layout = headless_chromium.measure(ten_report, tmp_path, REPORT_WIDTH)
    charts = {c["id"]: c for c in layout["charts"]}
    inks = {**CHART_INK, **(MONITOR_INK if ten.of("monitor.drift") else {})}
    assert set(charts) == set(inks)
    bottom = max(c["y"] + c["h"] for c in charts.values())
    shot = headless_chromium.screenshot(ten_report, tmp_path / "report.png", REPORT_WIDTH, int(bottom) + 20)
    pixels = read_png(shot)
    assert pixels.shape[1] == REPORT_WIDTH
    for chart_id, box in charts.items():
        x, y, w, h = (int(box[k]) for k in ("x", "y", "w", "h"))
        assert w > 100 and h > 60, (chart_id, box)
        area = pixels[y:y + h, x:x + w]
        assert _ink(area, inks[chart_id]) >= 30, f"{chart_id} shows none of its colour"
        assert _not_white(area) > 0.005, f"{chart_id} is blank"
        margin = pixels[y:y + h, REPORT_WIDTH - 40:REPORT_WIDTH]  # beyond the page's 1100 px column
        assert _ink(margin, inks[chart_id]) == 0 and _not_white(margin) == 0.0
