"""fedgov's simulation against a plain Flower app, side by side in one invocation.

Same model, data, training loop, nodes and rounds. Each pair runs back to back, the
order alternating between repeats. Usage:
    python bench/sim_overhead.py [--repeats 2] [--scale]   (--scale adds 1000-node runs)
Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import measure  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
       "RAY_USAGE_STATS_ENABLED": "0", "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0"}


def plain(nodes: int, rounds: int, fraction: float):
    return measure([sys.executable, str(REPO / "bench" / "plain_flower.py"), str(nodes), str(rounds), str(fraction)],
                   env=ENV)


def fedgov(nodes: int, rounds: int, fraction: float, extra: tuple[str, ...] = ()):
    out = tempfile.mkdtemp(prefix="fedgov-bench-")
    return measure([sys.executable, "-m", "fedgov", "sim", "run", "--nodes", str(nodes), "--rounds", str(rounds),
                    "--fraction", str(fraction), "--out", out, *extra], env=ENV)


def compare(nodes: int, rounds: int, fraction: float, repeats: int) -> dict:
    walls = {"plain": [], "fedgov": []}
    mems = {"plain": [], "fedgov": []}
    for i in range(repeats):
        order = [("plain", plain), ("fedgov", fedgov)]
        for name, fn in (order if i % 2 == 0 else order[::-1]):
            m = fn(nodes, rounds, fraction)
            if m.returncode != 0:
                raise SystemExit(f"{name} failed:\n{m.stdout[-3000:]}")
            walls[name].append(m.wall_s)
            mems[name].append(m.peak_rss_mb)
    p, f = statistics.median(walls["plain"]), statistics.median(walls["fedgov"])
    return {"nodes": nodes, "rounds": rounds, "fraction": fraction, "plain_s": p, "fedgov_s": f,
            "ratio": f / p, "plain_mb": max(mems["plain"]), "fedgov_mb": max(mems["fedgov"])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--scale", action="store_true", help="also 1000 nodes at fraction 0.1 and 1.0")
    parser.add_argument("--configs", default="10x3,100x5")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    print("| nodes x rounds | fraction | plain Flower (s) | fedgov (s) | ratio | plain peak RSS (MB) | fedgov peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|")
    for spec in args.configs.split(","):
        nodes, rounds = map(int, spec.split("x"))
        r = compare(nodes, rounds, 1.0, args.repeats)
        print(f"| {nodes} x {rounds} | 1.0 | {r['plain_s']:.2f} | {r['fedgov_s']:.2f} | {r['ratio']:.3f} | "
              f"{r['plain_mb']:.0f} | {r['fedgov_mb']:.0f} |", flush=True)
    if args.scale:
        print("\n| fedgov, 1000 nodes x 3 rounds | wall (s) | peak RSS of the process tree (MB) |")
        print("|---|---|---|")
        for fraction in (0.1, 1.0):
            m = fedgov(1000, 3, fraction)
            if m.returncode != 0:
                raise SystemExit(m.stdout[-3000:])
            print(f"| fraction {fraction} | {m.wall_s:.1f} | {m.peak_rss_mb:.0f} |", flush=True)


if __name__ == "__main__":
    main()
