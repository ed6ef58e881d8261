"""Evidence bundle benchmark (issue 11, Performance): export and verify one run of R rounds × N nodes.

Usage: python bench/bundle_bench.py [--rounds 100] [--nodes 100] [--repeats 3]

The ledger is a governed run written with the governance API (the entry shapes a governed round
writes: tests/governance/governed_ledger.py), then `fedgov audit export --out bundle.zip` and
`python -m governance.verify bundle.zip --trusted-key …` are timed as the user runs them (wall
time and peak RSS, interpreter start-up and the passphrase's scrypt included). Target: the
bundle verifies in under 10 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the ledger builder lives with the tests that use it

from bench.measure import Measurement, measure  # noqa: E402
from governance.ledger import create_workspace  # noqa: E402
from tests.governance.governed_ledger import build_governed_run  # noqa: E402

PASSPHRASE = "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "FEDGOV_PASSPHRASE": PASSPHRASE, "FLWR_TELEMETRY_ENABLED": "0"}
    env.pop("FEDGOV_HOME", None)
    env.pop("FEDGOV_DB_URL", None)
    fedgov = str(Path(sys.executable).parent / "fedgov")
    with tempfile.TemporaryDirectory() as tmp:
        ws = create_workspace(Path(tmp) / ".fedgov", PASSPHRASE)
        t0 = time.perf_counter()
        build_governed_run(ws, PASSPHRASE, rounds=args.rounds, nodes=args.nodes)
        build_s = time.perf_counter() - t0
        exports, verifies = [], []
        for i in range(args.repeats):
            out = Path(tmp) / f"bundle-{i}.zip"
            exported = _timed([fedgov, "audit", "export", "--workspace", str(ws.path), "--out", str(out)], env)
            if exported[0].returncode != 0:
                sys.exit(f"export failed: {exported[0].stdout}")
            exports.append(exported)
            checked = _timed([sys.executable, "-m", "governance.verify", str(out), "--trusted-key",
                              str(ws.trust_path)], env)
            if checked[0].returncode != 0 or not checked[0].stdout.startswith("verified: "):
                sys.exit(f"verify failed: {checked[0].stdout}")
            verifies.append(checked)
        bundle = Path(tmp) / "bundle-0.zip"
        same = all((Path(tmp) / f"bundle-{i}.zip").read_bytes() == bundle.read_bytes() for i in range(args.repeats))
        with zipfile.ZipFile(bundle) as archive:
            members = [(info.filename, info.file_size, info.compress_size) for info in archive.infolist()]
        print(f"machine: {platform.machine()} {_cpu()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
              f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"ledger: 1 run, {args.rounds} rounds x {args.nodes} nodes built in {build_s:.1f} s")
        print(verifies[0][0].stdout.strip().splitlines()[0])
        print(f"bundle: {bundle.stat().st_size / 2**20:.2f} MiB zip ({sum(m[1] for m in members) / 2**20:.2f} MiB "
              f"unpacked); identical bytes on every export: {same}")
        for name, size, packed in members:
            print(f"  {name:20} {size / 2**10:9.1f} KiB -> {packed / 2**10:9.1f} KiB")
        for what, runs in (("export", exports), ("verify", verifies)):
            walls, cpus = [m.wall_s for m, _ in runs], [cpu for _, cpu in runs]
            print(f"{what}: median {statistics.median(walls):.2f} s wall (min {min(walls):.2f}, max {max(walls):.2f}), "
                  f"median {statistics.median(cpus):.2f} CPU s, over {len(runs)} runs; peak RSS "
                  f"{max(m.peak_rss_mb for m, _ in runs):.0f} MiB")


def _timed(command: list[str], env: dict[str, str]) -> tuple[Measurement, float]:
    """Wall time and peak RSS (bench/measure.py), and the CPU seconds the command used (less hurt by a busy machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    measured = measure(command, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return measured, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
