"""Scale and resources: a Ray cluster to attach to, the GPU path on CPU, 1000 nodes."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest

from fedgov.processes import running
from fedgov.training import resolve_device
from simulations.engine import backend_config
from tests.conftest import processes_marked
from tests.e2e.ray_head import start_ray_head, stop_marked
from tests.fedgov_command import MARK_VARIABLE, fedgov_argv, fedgov_env

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def ray_head():
    """A local Ray head that declares one GPU, started and stopped by the test."""
    address, mark = start_ray_head("--num-cpus=2", "--num-gpus=1")
    try:
        yield address
    finally:
        stop_marked(mark)


def test_a_test_ray_heads_agents_carry_its_mark_and_none_outlives_it():
    """Ray's agents retitle themselves, which zeroes the start of what /proc shows of their environment: a mark
    placed there was gone, and `stop_marked` left both agents running (tests/fedgov_command.py, `marked`)."""
    _address, mark = start_ray_head("--num-cpus=1")
    try:
        deadline = time.monotonic() + 30
        while True:
            agents = {pid: cmd for pid, cmd in processes_marked(mark).items() if cmd.startswith("ray::") and "Agent" in cmd}
            if len(agents) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert sorted(cmd.split()[0] for cmd in agents.values()) == ["ray::DashboardAgent", "ray::RuntimeEnvAgent"]
    finally:
        stop_marked(mark)

    deadline = time.monotonic() + 5  # SIGKILLed by now: the kernel takes a moment to end them
    while any(map(running, agents)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in agents if running(pid)] == []


def test_gpus_per_node_maps_to_flower_client_resources():
    config = backend_config(cpus_per_node=2, gpus_per_node=0.1, ray_address=None)
    assert config["client_resources"] == {"num_cpus": 2, "num_gpus": 0.1}
    assert config["init_args"]["address"] == "local"  # a new cluster of its own, never one found on the machine


def test_ray_address_goes_to_flowers_backend_init_args():
    assert backend_config(1, 0, "127.0.0.1:6379")["init_args"]["address"] == "127.0.0.1:6379"


def test_cuda_is_used_only_when_asked_and_available():
    import torch

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("cuda").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_gpus_per_node_without_a_visible_gpu_is_one_clear_line(fedgov, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here: the refusal only applies without one")
    result = fedgov("sim", "run", "--gpus-per-node", "0.1", "--out", str(tmp_path / "r"), timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --gpus-per-node 0.1 asks for a GPU but none is visible; "
        "use --gpus-per-node 0, or --ray-address of a Ray cluster with GPUs"
    ]


def test_a_run_attaches_to_an_existing_ray_cluster_with_gpu_resources(ray_head, fedgov, tmp_path):
    """The GPU code path on CPU: Ray schedules nodes on declared GPU shares, training
    asks for cuda and falls back to the CPU where torch sees no GPU."""
    out = tmp_path / "run"
    result = fedgov("sim", "run", "--nodes", "3", "--rounds", "1", "--ray-address", ray_head, "--gpus-per-node", "0.3",
                    "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    request = json.loads((out / "request.json").read_text())
    assert request["ray_address"] == ray_head and request["gpus_per_node"] == 0.3
    assert request["run_config"]["device"] == "cuda"
    rounds = json.loads((out / "rounds.json").read_text())["rounds"]
    assert len(rounds[0]["replies"]) == 3
    import torch

    if not torch.cuda.is_available():  # asked for cuda, trained on the CPU: the record says where, not what was asked
        assert [reply["device"] for reply in rounds[0]["replies"]] == ["cpu"] * 3


def test_a_thousand_nodes_at_fraction_point_one_complete_with_a_recomputable_selection(fedgov, tmp_path,
                                                                                       ray_or_flower_processes):
    from governance import entry_types as et
    from governance.ledger import Ledger
    from governance.verify.selection import draw
    from governance.workspace import Workspace

    out = tmp_path / "run"
    result = fedgov("sim", "run", "--nodes", "1000", "--rounds", "2", "--fraction", "0.1", "--seed", "3",
                    "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((out / "rounds.json").read_text())
    rounds = data["rounds"]
    assert [len(r["candidates"]) for r in rounds] == [1000, 1000]
    assert [len(r["replies"]) for r in rounds] == [100, 100]
    assert ray_or_flower_processes() == []
    with Ledger.open(Workspace.discover(None), write=False) as ledger:  # anyone redraws it: seed, round, nodes
        selections = {e.round: ledger.read_payload(e)
                      for e in ledger.query(run_id=data["run_id"], entry_type=et.ROUND_SELECTION)}
    nodes = [f"sim-{i:04d}" for i in range(1000)]
    for rnd in rounds:
        selection = selections[rnd["round"]]
        assert selection["selected"] == draw(nodes, 100, 3, rnd["round"])  # k = 1000 * 0.1, seed 3
        assert sorted(int(selection["flower_node_ids"][n]) for n in selection["selected"]) == rnd["selected"]


# Ctrl-C, SIGTERM, kill -9 and a dying Ray cluster: test_signals.py
# a run beside another user's Ray cluster (neither joined nor disturbed): test_contained_engine.py



def test_a_run_on_a_cluster_of_its_own_starts_a_ray_worker_per_actor_and_no_idle_one(tmp_path):
    """Ray would prestart one idle worker per CPU when the engine connects, which Flower's actors never use (each
    actor gets a worker of its own; Ray ends the idle ones a second later), so the engine turns that off
    (simulations/engine.py, `backend_config`): every Ray worker the run ever starts becomes an actor."""
    mark = f"workers-{uuid.uuid4().hex}"
    env = {MARK_VARIABLE: mark, "FLWR_HOME": str(tmp_path / "flwr"), "FEDGOV_HOME": str(tmp_path / "workspace")}
    run = subprocess.Popen(fedgov_argv("sim", "run", "--nodes", "3", "--rounds", "2", "--out", str(tmp_path / "run")),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=fedgov_env(env), cwd=tmp_path)
    workers: dict[int, set[str]] = {}  # every Ray worker seen, with every title it had
    while run.poll() is None:
        for pid, cmd in processes_marked(mark).items():
            if cmd.startswith("ray::") and "Agent" not in cmd:
                workers.setdefault(pid, set()).add(cmd.split()[0])
        time.sleep(0.05)
    assert run.returncode == 0, run.stderr.read()[-3000:]
    actors = min(3, os.cpu_count() or 1)  # 3 nodes of 1 CPU each, on this machine's CPUs
    assert len(workers) == actors and all(titles & {"ray::ClientAppActor", "ray::ClientAppActor.run"}
                                          for titles in workers.values()), workers
