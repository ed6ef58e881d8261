"""Every benchmark under bench/, one after the other, with the arguments docs/benchmarks.md gives them.

    python bench/run_all.py             # all of them (`make bench`); a long while: the ledger and
                                        # signed-write benches build 1,000,000-entry ledgers
    python bench/run_all.py node_costs reply_checks   # only these

Each one's output is printed as it comes. Exits 1 if any of them failed, naming which.
(The PostgreSQL variants of ledger_bench and verify_bench need a database, and gpu_check needs a GPU
machine: they are not run here.)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

# name -> arguments, as docs/benchmarks.md runs them
BENCHMARKS = {
    "sim_overhead": ["--repeats", "3", "--configs", "10x3,100x5,1000x2@0.1", "--scale"],
    "ledger_bench": ["--entries", "1000000", "--batch", "50000"],
    "verify_bench": ["--entries", "1000000", "--repeats", "3"],
    "node_costs": ["--repeats", "200"],
    "reply_checks": ["--repeats", "200"],
    "signed_writes": ["--sizes", "1000,100000,1000000", "--repeats", "200"],
    "deploy_rounds": ["--nodes", "3,20", "--rounds", "3", "--repeats", "2"],
    "bundle_bench": ["--rounds", "100", "--nodes", "100", "--repeats", "3"],
    "monitor_overhead": ["--repeats", "3", "--configs", "100x5"],
    "first_output": ["--nodes", "100", "--rounds", "1"],
}


def main() -> int:
    chosen = sys.argv[1:] or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    failed = []
    for name in chosen:
        command = [sys.executable, str(BENCH / f"{name}.py"), *BENCHMARKS[name]]
        print(f"\n=== {name}: python bench/{name}.py {' '.join(BENCHMARKS[name])}", flush=True)
        began = time.monotonic()
        code = subprocess.run(command, cwd=BENCH.parent).returncode
        print(f"=== {name}: exit {code}, {time.monotonic() - began:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
