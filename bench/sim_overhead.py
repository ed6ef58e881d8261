"""fedgov's governed simulation against a plain Flower app, side by side in one invocation.

Same model, data, training loop, nodes and rounds; the plain app is bench/plain_flower.py
(Flower's FedAvg and public run_simulation, no governance). Each pair runs back to back,
the order alternating between repeats; the ratio is of medians. Usage:

    python bench/sim_overhead.py [--repeats 2] [--configs 10x3,100x5,1000x2@0.1] [--scale]

`--scale` adds fedgov alone at 1000 nodes x 3 rounds, fraction 0.1 and 1.0 (wall, peak RSS).
Prints Markdown tables for docs/benchmarks.md, with where governance spent its time per round.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import measure  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
       "RAY_USAGE_STATS_ENABLED": "0", "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
       "FEDGOV_PASSPHRASE": os.environ.get("FEDGOV_PASSPHRASE", "bench-passphrase")}


def plain(nodes: int, rounds: int, fraction: float):
    return measure([sys.executable, str(REPO / "bench" / "plain_flower.py"), str(nodes), str(rounds), str(fraction)],
                   env=ENV), None


def fedgov(nodes: int, rounds: int, fraction: float, *extra: str):
    """One `fedgov sim run` (with `extra` options) in its own workspace: its measurement and rounds.json."""
    tmp = Path(tempfile.mkdtemp(prefix="fedgov-bench-"))
    env = {**ENV, "FEDGOV_HOME": str(tmp / "workspace")}
    try:
        m = measure([sys.executable, "-m", "cli", "sim", "run", "--nodes", str(nodes), "--rounds", str(rounds),
                     "--fraction", str(fraction), "--out", str(tmp / "run"), *extra], env=env)
        rounds_json = tmp / "run" / "rounds.json"
        return m, json.loads(rounds_json.read_text()) if rounds_json.exists() else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # a workspace per run: nothing left in /tmp


def parse(spec: str) -> tuple[int, int, float]:
    size, _, fraction = spec.partition("@")
    nodes, rounds = map(int, size.split("x"))
    return nodes, rounds, float(fraction or 1.0)


def compare(nodes: int, rounds: int, fraction: float, repeats: int) -> dict:
    walls: dict[str, list[float]] = {"plain": [], "fedgov": []}
    mems: dict[str, list[float]] = {"plain": [], "fedgov": []}
    overhead: dict[str, list[float]] = defaultdict(list)
    for i in range(repeats):
        order = [("plain", plain), ("fedgov", fedgov)]
        for name, fn in (order if i % 2 == 0 else order[::-1]):
            m, result = fn(nodes, rounds, fraction)
            if m.returncode != 0:
                raise SystemExit(f"{name} failed:\n{m.stdout[-3000:]}")
            walls[name].append(m.wall_s)
            mems[name].append(m.peak_rss_mb)
            for rnd in (result or {}).get("rounds", []):
                for step, seconds in rnd.get("governance_seconds", {}).items():
                    overhead[step].append(seconds)
    p, f = statistics.median(walls["plain"]), statistics.median(walls["fedgov"])
    return {"plain_s": p, "fedgov_s": f, "ratio": f / p, "plain_mb": max(mems["plain"]),
            "fedgov_mb": max(mems["fedgov"]), "overhead": {k: statistics.mean(v) for k, v in overhead.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--configs", default="10x3,100x5,1000x2@0.1")
    parser.add_argument("--scale", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"median of {args.repeats} runs each, whole command wall time including Ray start-up\n")
    print("| nodes x rounds | fraction | plain Flower (s) | fedgov governed (s) | ratio | plain peak RSS (MB) | fedgov peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|")
    breakdowns = {}
    for spec in args.configs.split(","):
        nodes, rounds, fraction = parse(spec)
        r = compare(nodes, rounds, fraction, args.repeats)
        breakdowns[spec] = r["overhead"]
        print(f"| {nodes} x {rounds} | {fraction} | {r['plain_s']:.2f} | {r['fedgov_s']:.2f} | {r['ratio']:.3f} | "
              f"{r['plain_mb']:.0f} | {r['fedgov_mb']:.0f} |", flush=True)
    print("\nWhere governance spends its time, mean per round (ms):\n")
    steps = sorted({s for b in breakdowns.values() for s in b})
    print("| step | " + " | ".join(breakdowns) + " |")
    print("|---|" + "---|" * len(breakdowns))
    for step in steps:
        print(f"| {step} | " + " | ".join(f"{b.get(step, 0) * 1000:.1f}" for b in breakdowns.values()) + " |")
    if args.scale:
        print("\n| fedgov, 1000 nodes x 3 rounds | wall (s) | peak RSS of the process tree (MB) |")
        print("|---|---|---|")
        for fraction in (0.1, 1.0):
            m, _ = fedgov(1000, 3, fraction)
            if m.returncode != 0:
                raise SystemExit(m.stdout[-3000:])
            print(f"| fraction {fraction} | {m.wall_s:.1f} | {m.peak_rss_mb:.0f} |", flush=True)


if __name__ == "__main__":
    main()
