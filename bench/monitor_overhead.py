"""What monitoring costs: a governed run with node summaries and drift/fairness records, against
the same run with `--no-monitor`, side by side in one invocation; and how many bytes a node's
summary adds to its reply, against the model update it sends anyway.

Each pair runs back to back, the order alternating between repeats; the ratio is of medians
(issue 12's target: <= 1.05 at 100 nodes x 5 rounds). Usage:

    python bench/monitor_overhead.py [--repeats 3] [--configs 100x5] [--datasets breast-cancer,digits]

Prints Markdown tables for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sim_overhead import fedgov  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def governed(nodes: int, rounds: int, fraction: float, dataset: str, monitor: bool):
    """One `fedgov sim run` in its own workspace: wall time, peak RSS and its rounds.json."""
    return fedgov(nodes, rounds, fraction, "--dataset", dataset, *([] if monitor else ["--no-monitor"]))


def parse(spec: str) -> tuple[int, int, float]:
    size, _, fraction = spec.partition("@")
    nodes, rounds = map(int, size.split("x"))
    return nodes, rounds, float(fraction or 1.0)


def compare(nodes: int, rounds: int, fraction: float, dataset: str, repeats: int) -> dict:
    walls: dict[str, list[float]] = {"off": [], "on": []}
    mems: dict[str, list[float]] = {"off": [], "on": []}
    monitor_ms: list[float] = []
    for i in range(repeats):
        order = [("off", False), ("on", True)]
        for name, monitor in (order if i % 2 == 0 else order[::-1]):
            m, result = governed(nodes, rounds, fraction, dataset, monitor)
            if m.returncode != 0:
                raise SystemExit(f"monitor {name} failed:\n{m.stdout[-3000:]}")
            walls[name].append(m.wall_s)
            mems[name].append(m.peak_rss_mb)
            if monitor:
                for rnd in (result or {}).get("rounds", []):
                    monitor_ms += [s * 1000 for step, s in rnd.get("governance_seconds", {}).items()
                                   if "monitor" in step]
    off, on = statistics.median(walls["off"]), statistics.median(walls["on"])
    return {"off_s": off, "on_s": on, "ratio": on / off, "off_mb": max(mems["off"]), "on_mb": max(mems["on"]),
            "walls": walls, "monitor_ms": statistics.mean(monitor_ms) if monitor_ms else 0.0}


def summary_bytes(dataset: str, nodes: int, bins: int) -> tuple[float, int, int, int]:
    """A node's summary as it travels (RFC 8785 JSON), mean and max over `nodes` IID nodes; the model
    update's array bytes; and the shared bins sent in each instruction."""
    from flwr.app import ArrayRecord

    from client.app import summary_rule
    from fedgov.models import build_model
    from fedgov.partition import load_partition
    from fedgov.settings import RunSettings
    from fedgov.summaries import summarize, summary_text
    from server.app import monitoring_reference

    settings = RunSettings.from_run_config({"dataset": dataset, "num-partitions": nodes, "monitor-bins": bins})
    reference, rule = monitoring_reference(settings), summary_rule(settings, None)
    sizes = []
    for pid in range(nodes):
        part = load_partition(dataset, pid, nodes, "iid", 0.5, settings.training.seed)
        sizes.append(len(summary_text(summarize(part.train.x, part.train.y, reference, rule)).encode()))
    update = sum(len(a.data) for a in ArrayRecord(build_model(dataset, settings.training.seed).state_dict()).values())
    return statistics.mean(sizes), max(sizes), update, len(reference.to_text().encode())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", default="100x5")
    parser.add_argument("--dataset", default="breast-cancer")
    parser.add_argument("--datasets", default="breast-cancer,digits", help="for the summary-bytes table")
    parser.add_argument("--skip-runs", action="store_true", help="only the summary-bytes table")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load {os.getloadavg()[0]:.1f}; median of {args.repeats} runs each, whole command wall time\n")
    if not args.skip_runs:
        print("| nodes x rounds | dataset | monitoring off (s) | monitoring on (s) | ratio | every run off / on (s) "
              "| peak RSS off / on (MB) | monitor records, mean per round (ms) |")
        print("|---|---|---|---|---|---|---|---|")
        for spec in args.configs.split(","):
            nodes, rounds, fraction = parse(spec)
            r = compare(nodes, rounds, fraction, args.dataset, args.repeats)
            each = " ".join(f"{x:.1f}" for x in r["walls"]["off"]) + " / " + " ".join(f"{x:.1f}" for x in r["walls"]["on"])
            print(f"| {nodes} x {rounds}{'' if fraction == 1.0 else f' @{fraction}'} | {args.dataset} | {r['off_s']:.2f} | "
                  f"{r['on_s']:.2f} | {r['ratio']:.3f} | {each} | {r['off_mb']:.0f} / {r['on_mb']:.0f} | "
                  f"{r['monitor_ms']:.1f} |", flush=True)
    print("\n| dataset | nodes | bins | summary per node per round (bytes, mean / max) | model update (bytes) "
          "| summary / update | shared bins in each instruction (bytes) |")
    print("|---|---|---|---|---|---|---|")
    for dataset in args.datasets.split(","):
        for nodes in (10, 100):
            for bins in (5, 10):
                mean, top, update, cuts = summary_bytes(dataset, nodes, bins)
                print(f"| {dataset} | {nodes} | {bins} | {mean:.0f} / {top} | {update} | {mean / update:.1%} | {cuts} |",
                      flush=True)

if __name__ == "__main__":
    main()
