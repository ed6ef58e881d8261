"""The GPU check (issue 13, item 6): did the nodes train on CUDA, and what does it cost against the CPU?

On one machine, in one command, runs

    fedgov sim run --nodes 100 --rounds 3 --dataset digits --gpus-per-node G

for each G of `--gpus` (default 0.1, then 0), each in a fresh workspace, and prints per run:
wall time, peak RSS of the run's whole process tree (fedgov, the engine, Ray and its actors),
the GPU memory the run's processes held at peak (nvidia-smi, sampled, where there is one), and
how many nodes trained on which device, read back from the run's records: the `round.reply`
entries of the ledger (each node's signed `device`: fedgov/devices.py) and `rounds.json`,
which must agree. Usage:

    python bench/gpu_check.py [--gpus 0.1,0] [--nodes 100] [--rounds 3] [--dataset digits]

Exits 1 when a run failed, the two records disagree, a run with G > 0 has any node that did not
train on CUDA (or stated no device), or a run with G = 0 has any node off the CPU. Without a
visible GPU, `fedgov sim run --gpus-per-node 0.1` refuses in one line (exit 2), which is shown
and fails the check; `--gpus 0` checks the CPU path alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import _tree_rss_bytes  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PASSPHRASE = os.environ.get("FEDGOV_PASSPHRASE", "gpu-check-passphrase")
ENV = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
       "RAY_USAGE_STATS_ENABLED": "0", "FEDGOV_PASSPHRASE": PASSPHRASE}


@dataclass
class RunCheck:
    """One `fedgov sim run` and what its records say about where its nodes trained."""

    gpus_per_node: float
    returncode: int = -1
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    peak_gpu_mb: float | None = None  # the run's processes' GPU memory at peak (nvidia-smi); None: no nvidia-smi
    peak_gpu_above_baseline_mb: float | None = None  # all GPUs' used memory at peak, less what was used before
    ledger_devices: Counter = field(default_factory=Counter)  # device text -> replies, from round.reply
    rounds_devices: Counter = field(default_factory=Counter)  # the same from rounds.json
    error: str = ""

    def problems(self) -> list[str]:
        """Why this run fails the check (empty: it passes)."""
        if self.returncode != 0:
            return [f"--gpus-per-node {self.gpus_per_node:g}: the run failed (exit {self.returncode}): "
                    f"{self.error or 'see its output'}"]
        found = []
        if self.ledger_devices != self.rounds_devices:
            found.append(f"--gpus-per-node {self.gpus_per_node:g}: the ledger ({dict(self.ledger_devices)}) and "
                         f"rounds.json ({dict(self.rounds_devices)}) disagree")
        if not self.ledger_devices:
            found.append(f"--gpus-per-node {self.gpus_per_node:g}: no reply recorded")
        want = "cuda" if self.gpus_per_node > 0 else "cpu"
        off = {device: n for device, n in self.kinds().items() if device != want}
        if off:
            found.append(f"--gpus-per-node {self.gpus_per_node:g}: replies not trained on {want}: {off}")
        return found

    def kinds(self) -> Counter:
        """Replies by kind of device: cuda, cpu, or not recorded."""
        from fedgov.devices import device_kind

        kinds: Counter = Counter()
        for device, count in self.ledger_devices.items():
            kinds[device_kind(device)] += count
        return kinds


def devices_in_rounds(rounds: dict) -> Counter:
    """Replies by stated device in a rounds.json (None for a reply that stated none)."""
    return Counter(reply.get("device") for rnd in rounds.get("rounds", []) for reply in rnd.get("replies", []))


def devices_in_ledger(workspace: Path, run_id: str) -> Counter:
    """Replies by stated device in the run's round.reply entries (read with the workspace's passphrase)."""
    from governance import entry_types as et
    from governance.ledger import Ledger
    from governance.workspace import Workspace

    with Ledger.open(Workspace.discover(workspace), PASSPHRASE, write=False) as ledger:
        return Counter(ledger.read_payload(e).get("device") for e in ledger.query(et.ROUND_REPLY, run_id=run_id))


class GpuMemory:
    """Samples, every `interval` seconds, the GPU memory held by the processes under `root`, and the memory used on
    all GPUs above what was used before the run (nvidia-smi; the second also where a container hides the pids)."""

    def __init__(self, root: int, interval: float = 0.5) -> None:
        self.root, self.interval = root, interval
        present = shutil.which("nvidia-smi") is not None
        self.peak_mb: float | None = 0.0 if present else None
        self.peak_above_baseline_mb: float | None = 0.0 if present else None
        self._baseline = self._device_used() if present else 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        if present:
            self._thread.start()

    @staticmethod
    def _query(*args: str) -> list[list[str]]:
        try:
            out = subprocess.run(["nvidia-smi", *args, "--format=csv,noheader,nounits"], capture_output=True,
                                 text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return []
        return [[field.strip() for field in line.split(",")] for line in out.splitlines() if line.strip()]

    def _device_used(self) -> float:
        return sum(float(row[0]) for row in self._query("--query-gpu=memory.used") if row and _number(row[0]))

    def _sample(self) -> None:
        while not self._done.is_set():
            tree = _tree_pids(self.root)
            used = sum(float(row[1]) for row in self._query("--query-compute-apps=pid,used_memory")
                       if len(row) == 2 and row[0].isdigit() and int(row[0]) in tree and _number(row[1]))
            self.peak_mb = max(self.peak_mb or 0.0, used)
            self.peak_above_baseline_mb = max(self.peak_above_baseline_mb or 0.0,
                                              self._device_used() - self._baseline)
            time.sleep(self.interval)

    def stop(self) -> tuple[float | None, float | None]:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.peak_mb, self.peak_above_baseline_mb


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _tree_pids(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, stack = set(), [root]
    while stack:
        pid = stack.pop()
        found.add(pid)
        stack.extend(children.get(pid, []))
    return found


def run_once(gpus: float, nodes: int, rounds: int, dataset: str) -> RunCheck:
    """One run in a fresh workspace; its measurements and device counts."""
    check = RunCheck(gpus)
    tmp = Path(tempfile.mkdtemp(prefix="fedgov-gpu-check-"))
    env = {**ENV, "FEDGOV_HOME": str(tmp / "workspace")}
    fedgov = Path(sys.executable).parent / "fedgov"
    command = [str(fedgov), "sim", "run", "--nodes", str(nodes), "--rounds", str(rounds), "--dataset", dataset,
               "--gpus-per-node", f"{gpus:g}", "--out", str(tmp / "run")]
    print(f"$ {' '.join(command[1:])}", flush=True)
    try:
        start = time.monotonic()
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        gpu, peak, done = GpuMemory(proc.pid), 0, threading.Event()

        def sample_rss() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss_bytes(proc.pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        _, err = proc.communicate()
        check.wall_s, check.returncode = time.monotonic() - start, proc.returncode
        done.set()
        sampler.join()
        check.peak_rss_mb = peak / 2**20
        check.peak_gpu_mb, check.peak_gpu_above_baseline_mb = gpu.stop()
        check.error = err.strip().splitlines()[-1] if err.strip() else ""
        rounds_path = tmp / "run" / "rounds.json"
        if proc.returncode == 0 and rounds_path.exists():
            rounds = json.loads(rounds_path.read_text())
            check.rounds_devices = devices_in_rounds(rounds)
            check.ledger_devices = devices_in_ledger(tmp / "workspace", str(rounds["run_id"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return check


def machine() -> str:
    """The machine, in one line: CPU, cores, memory, GPUs, torch and CUDA."""
    import torch

    gpus = "none visible"
    if shutil.which("nvidia-smi"):
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip().splitlines()
        gpus = "; ".join(listed) or gpus
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB; GPUs: {gpus}; torch {torch.__version__} "
            f"(CUDA {torch.version.cuda or 'none'}, available: {torch.cuda.is_available()}); "
            f"Python {platform.python_version()}")


def table(checks: list[RunCheck], nodes: int, rounds: int, dataset: str) -> str:
    """Markdown for docs/benchmarks.md."""
    lines = [f"`fedgov sim run --nodes {nodes} --rounds {rounds} --dataset {dataset} --gpus-per-node G`", "",
             "| G | exit | wall | peak RSS (tree) | peak GPU memory: run's processes / all GPUs above baseline "
             "| replies by device (ledger) |", "|---|---|---|---|---|---|"]
    for c in checks:
        gpu = "n/a (no nvidia-smi)" if c.peak_gpu_mb is None else \
            f"{c.peak_gpu_mb:.0f} MiB / {c.peak_gpu_above_baseline_mb or 0:.0f} MiB"
        devices = ", ".join(f"{device or 'not recorded'}: {n}" for device, n in sorted(
            c.ledger_devices.items(), key=lambda kv: str(kv[0]))) or "-"
        lines.append(f"| {c.gpus_per_node:g} | {c.returncode} | {c.wall_s:.1f} s | {c.peak_rss_mb:.0f} MB | {gpu} | "
                     f"{devices} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", default="0.1,0", help="GPUs per node of each run, comma-separated (default 0.1,0)")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dataset", default="digits")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    checks = [run_once(float(g), args.nodes, args.rounds, args.dataset) for g in args.gpus.split(",")]
    print()
    print(table(checks, args.nodes, args.rounds, args.dataset))
    cpu = [c for c in checks if c.gpus_per_node == 0 and c.returncode == 0]
    gpu = [c for c in checks if c.gpus_per_node > 0 and c.returncode == 0]
    if cpu and gpu:
        print(f"\nwall time, GPU run / CPU run: {gpu[0].wall_s / cpu[0].wall_s:.2f}")
    problems = [p for c in checks for p in c.problems()]
    for problem in problems:
        print(f"FAILED: {problem}")
    if not problems:
        print("\nOK: every node of every run trained where its run asked, as the ledger and rounds.json record")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
