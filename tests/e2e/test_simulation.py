"""End to end: a real Flower simulation (Simulation Engine, Ray) launched by `fedgov sim run`."""

from __future__ import annotations

import json
import subprocess
from itertools import combinations
from pathlib import Path

import pytest

from fedgov.partition import load_partition
from tests.fedgov_command import run_fedgov

pytestmark = pytest.mark.timeout(600)


def sim_run(tmp: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """Run `fedgov sim run` as a user would; return the result, run dir and trace dir."""
    out, trace = tmp / "run", tmp / "trace"
    result = run_fedgov("sim", "run", "--out", str(out), "--trace-dir", str(trace), *args, timeout=600,
                        env={"FLWR_HOME": str(tmp / "flwr"), "FEDGOV_HOME": str(tmp / "workspace")})
    return result, out, trace


@pytest.fixture(scope="module")
def four_nodes(tmp_path_factory):
    """4 IID nodes x 2 rounds of FedAvg on breast-cancer."""
    result, out, trace = sim_run(tmp_path_factory.mktemp("four"), "--nodes", "4", "--rounds", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    return result, json.loads((out / "rounds.json").read_text()), out, trace


def test_the_global_model_improves(four_nodes):
    _, rounds, _, _ = four_nodes
    initial, final = rounds["initial_eval"], rounds["rounds"][-1]["eval"]
    assert final["accuracy"] > initial["accuracy"] + 0.1
    assert final["loss"] < initial["loss"]


def test_every_node_trained_only_on_its_own_partition(four_nodes):
    _, _, _, trace = four_nodes
    traces = [json.loads(p.read_text()) for p in sorted(trace.glob("node-*-round-*.json"))]
    assert len(traces) == 4 * 2  # every node, every round
    by_node = {}
    for t in traces:
        own = load_partition("breast-cancer", t["partition_id"], 4).indices.tolist()
        assert t["pool_indices"] == own
        by_node[t["partition_id"]] = set(t["pool_indices"])
    assert sorted(by_node) == [0, 1, 2, 3]
    for a, b in combinations(by_node.values(), 2):
        assert not a & b


def test_no_reply_carried_anything_but_weights_and_metrics(four_nodes):
    _, rounds, _, _ = four_nodes
    replies = [r for rnd in rounds["rounds"] for r in rnd["replies"]]
    assert len(replies) == 8
    model_keys = sorted(rounds["rounds"][0]["replies"][0]["records"]["arrays"])
    for reply in replies:
        # weights, metrics, the node's data summary (suppressed histograms, docs/monitoring.md) and its
        # signed statement (digests and counts, never rows)
        assert reply["record_types"] == {"arrays": "ArrayRecord", "metrics": "MetricRecord",
                                         "governance": "ConfigRecord", "summary": "ConfigRecord"}
        assert set(reply["records"]["summary"]) == {"json"}
        assert sorted(reply["records"]["arrays"]) == model_keys
        assert set(reply["records"]["metrics"]) == {"num-examples", "train-loss", "local-loss", "local-accuracy"}
        assert set(reply["records"]["governance"]) == {"node-id", "signature", "fingerprint", "device"}


def test_every_round_trains_every_node_when_fraction_is_one(four_nodes):
    _, rounds, _, _ = four_nodes
    assert [len(r["selected"]) for r in rounds["rounds"]] == [4, 4]
    assert all(len(r["candidates"]) == 4 for r in rounds["rounds"])


def test_the_run_directory_holds_config_metrics_and_model(four_nodes):
    _, _, out, _ = four_nodes
    config = json.loads((out / "config.json").read_text())
    assert config["num-partitions"] == 4 and config["num-server-rounds"] == 2
    import torch

    state = torch.load(out / "model.pt")
    assert set(state) == {"net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"}


def test_the_summary_shows_accuracy_nodes_and_wall_time(four_nodes):
    result, _, _, _ = four_nodes
    assert "round 1/2" in result.stdout and "round 2/2" in result.stdout
    assert "federated run summary" in result.stdout and "wall time" in result.stdout


def test_no_ray_or_flower_process_outlives_the_command(four_nodes, ray_or_flower_processes):
    assert ray_or_flower_processes() == []


# hostile and malformed replies: the `hostile` run in test_governed_rounds.py


def test_a_round_below_min_valid_replies_fails_and_keeps_the_model(tmp_path):
    result, out, _ = sim_run(tmp_path, "--nodes", "2", "--rounds", "1", "--faults", "0:shape,1:nan",
                             "--min-valid-replies", "1")
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith("error: 1 of 1 rounds failed (round 1: round 1 failed: "
                                                             "0 valid replies, below min-valid-replies=1")
    data = json.loads((out / "rounds.json").read_text())
    rnd = data["rounds"][0]
    assert rnd["status"] == "failed"
    assert "0 valid replies, below min-valid-replies=1" in rnd["failure"]
    assert rnd["eval"]["accuracy"] == pytest.approx(data["initial_eval"]["accuracy"])


# seeded sampling at fraction 0.1 is recomputed in test_resources.py's 1000-node run


# fedavg trains 3 rounds in `fedgov demo` (test_governed_rounds.py); the other five here
@pytest.mark.parametrize("strategy", ["fedprox", "fedadam", "fedtrimmedavg", "krum", "fedmedian"])
def test_every_strategy_trains_three_rounds_in_the_models_dtype(tmp_path, strategy):
    import torch

    result, out, _ = sim_run(tmp_path, "--nodes", "3", "--rounds", "3", "--strategy", strategy, "--local-epochs", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((out / "rounds.json").read_text())
    assert [r["status"] for r in data["rounds"]] == ["ok", "ok", "ok"]
    assert data["rounds"][-1]["eval"]["accuracy"] > data["initial_eval"]["accuracy"]
    model = torch.load(out / "model.pt")
    assert {str(t.dtype) for t in model.values()} == {"torch.float32"}
    from governance import entry_types as et
    from governance.ledger import Ledger
    from governance.workspace import Workspace

    with Ledger.open(Workspace.discover(tmp_path / "workspace")) as ledger:  # wrapped unchanged, recorded
        [start] = [ledger.read_payload(e) for e in ledger.query(entry_type=et.RUN_STARTED)]
        assert start["strategy"]["name"] == strategy
        assert len(ledger.query(entry_type=et.ROUND_AGGREGATED)) == 3
    assert run_fedgov("audit", "verify", "--require-signed", env={"FEDGOV_HOME": str(tmp_path / "workspace")}
                      ).returncode == 0
