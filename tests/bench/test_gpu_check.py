"""bench/gpu_check.py's verdict: a GPU run passes only when every node's recorded device is CUDA, a CPU run only
when every node's is the CPU, and the ledger and rounds.json must agree. (The runs themselves are not repeated
here: docs/benchmarks.md has the check run on the CPU path.)"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from gpu_check import RunCheck, devices_in_rounds  # noqa: E402

H200 = "cuda:0 (NVIDIA H200)"


def _run(gpus: float, devices: dict, rounds_devices: dict | None = None, returncode: int = 0) -> RunCheck:
    return RunCheck(gpus, returncode=returncode, ledger_devices=Counter(devices),
                    rounds_devices=Counter(devices if rounds_devices is None else rounds_devices))


def test_devices_are_counted_per_reply_from_rounds_json():
    rounds = {"rounds": [{"replies": [{"device": H200}, {"device": "cuda:1 (NVIDIA H200)"}]},
                         {"replies": [{"device": H200}, {}]}]}
    assert devices_in_rounds(rounds) == Counter({H200: 2, "cuda:1 (NVIDIA H200)": 1, None: 1})


def test_a_gpu_run_whose_every_node_trained_on_cuda_passes():
    check = _run(0.1, {H200: 250, "cuda:1 (NVIDIA H200)": 50})
    assert check.problems() == [] and check.kinds() == Counter({"cuda": 300})


def test_a_gpu_run_with_one_node_on_the_cpu_or_silent_fails_naming_it():
    assert _run(0.1, {H200: 299, "cpu": 1}).problems() == [
        "--gpus-per-node 0.1: replies not trained on cuda: {'cpu': 1}"]
    assert _run(0.1, {H200: 299, None: 1}).problems() == [
        "--gpus-per-node 0.1: replies not trained on cuda: {'not recorded': 1}"]


def test_a_cpu_run_must_be_all_cpu():
    assert _run(0, {"cpu": 300}).problems() == []
    assert _run(0, {"cpu": 299, H200: 1}).problems() == ["--gpus-per-node 0: replies not trained on cpu: {'cuda': 1}"]


def test_records_that_disagree_or_a_failed_run_fail_the_check():
    assert _run(0, {"cpu": 300}, {"cpu": 299}).problems()[0].startswith("--gpus-per-node 0: the ledger")
    refused = RunCheck(0.1, returncode=2, error="error: --gpus-per-node 0.1 asks for a GPU but none is visible")
    assert refused.problems() == ["--gpus-per-node 0.1: the run failed (exit 2): error: --gpus-per-node 0.1 asks "
                                  "for a GPU but none is visible"]
    assert _run(0.1, {}).problems() == ["--gpus-per-node 0.1: no reply recorded"]


def test_gpu_memory_counts_only_the_runs_processes_and_the_rise_over_the_baseline(tmp_path, monkeypatch):
    """Against a stand-in nvidia-smi: this process holds 512 MiB, another 700 MiB; all GPUs go from 1000 to 1800."""
    import os
    import time

    from gpu_check import GpuMemory

    calls = tmp_path / "calls"
    fake = tmp_path / "nvidia-smi"
    fake.write_text(f"""#!/bin/sh
case "$*" in
  *query-gpu*) echo x >> {calls}; if [ "$(wc -l < {calls})" -le 1 ]; then echo 1000; else echo 1800; fi ;;
  *query-compute-apps*) echo "{os.getpid()}, 512"; echo "99999999, 700"; echo "No running processes found" ;;
esac
""")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    memory = GpuMemory(os.getpid(), interval=0.05)
    time.sleep(0.3)
    assert memory.stop() == (512.0, 800.0)
