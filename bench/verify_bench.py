"""Verify benchmark: `fedgov audit verify`'s work on one ledger, serial and on all cores, beside the floor.

Usage: python bench/verify_bench.py --entries 1000000 [--workspace DIR] [--db-url URL] [--repeats 3]

Builds a ledger of `--entries` entries once (the same drafts as bench/ledger_bench.py) in
`--workspace` and reuses it when that folder already holds one of that size, so repeated runs
time verification only. Then, `--repeats` times and interleaved so that a noisy machine hits
both alike: the single-core verify floor (bench/ledger_bench.py's `floors()`, on that many rows),
`verify_ledger` serial (`workers=1`) and parallel (`workers=0`: all cores). Prints wall time, the
CPU time of the process tree (workers included) and each ratio to the floor measured in the same
round, then the peak RSS of this process and of its largest worker (its VmHWM, read just before
the parent stops it: a forked child's own rusage would count the parent's pages).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ledger_bench import floors  # noqa: E402

from governance.ledger import EntryDraft, Ledger, create_workspace, verify_workers  # noqa: E402
from governance.ledger.verify import verify_ledger  # noqa: E402
from governance.workspace import Workspace  # noqa: E402

PASSPHRASE = "bench"


def build(path: Path, entries: int, batch: int, db_url: str | None) -> Workspace:
    """A ledger of `entries` entries at `path` (reused when it is already there and that size)."""
    if (path / "bench-size").is_file() and (path / "bench-size").read_text() == str(entries):
        return Workspace(path)
    ws = create_workspace(path, PASSPHRASE, db_url=db_url)
    nodes = 50
    with Ledger.open(ws, PASSPHRASE) as ledger:
        done = 0
        while done < entries:
            n = min(batch, entries - done)
            ledger.append([EntryDraft("update_received", {"n_samples": 512, "loss": 0.1234, "i": done + i},
                                      f"node:n{(done + i) % nodes}", run_id="run-1",
                                      round=(done + i) // (nodes * 20), node_id=f"n{(done + i) % nodes}",
                                      model_hash="ab" * 32, config_hash="cd" * 32) for i in range(n)])
            done += n
        ledger.checkpoint()
    (path / "bench-size").write_text(str(entries))
    return ws


WORKER_PEAKS: list[int] = []  # kB, each worker's VmHWM, read just before the parent stops it


def _stop_after_reading_peaks(pool: verify_workers._Pool, stop=verify_workers._Pool.stop) -> None:
    for process in pool.processes:
        status = Path(f"/proc/{process.pid}/status").read_text()
        WORKER_PEAKS.extend(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    stop(pool)


verify_workers._Pool.stop = _stop_after_reading_peaks  # type: ignore[method-assign]


def timed_verify(ws: Workspace, workers: int) -> tuple[float, float, int]:
    """(wall s, CPU s of this process and its finished children, entries) of one verify_ledger call."""
    before = os.times()
    t0 = time.perf_counter()
    report = verify_ledger(ws, workers=workers)
    wall = time.perf_counter() - t0
    after = os.times()
    cpu = sum(after[:4]) - sum(before[:4])
    return wall, cpu, report.entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--workspace", type=Path, default=None, help="where the ledger is built once and reused")
    parser.add_argument("--db-url", default=None, help="PostgreSQL URL of an EMPTY database (default: SQLite)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="parallel run's workers (0: all cores)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = build(args.workspace or Path(tmp) / ".fedgov", args.entries, args.batch, args.db_url)
        print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}, "
              f"{'PostgreSQL' if args.db_url else 'SQLite ' + sqlite3.sqlite_version}; load {os.getloadavg()[0]:.1f}")
        for r in range(args.repeats):
            _, floor_s = floors(args.entries, args.batch, Path(tmp))
            (Path(tmp) / "floor.sqlite").unlink()
            serial, serial_cpu, n = timed_verify(ws, 1)
            parallel, parallel_cpu, _ = timed_verify(ws, args.workers)
            print(f"round {r + 1}: floor {floor_s:.2f} s | serial {serial:.2f} s (cpu {serial_cpu:.2f}) "
                  f"{serial / floor_s:.2f} x | parallel {parallel:.2f} s (cpu {parallel_cpu:.2f}) "
                  f"{parallel / floor_s:.2f} x the floor; {n} entries; load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"peak RSS: this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB (the floor's "
          f"rows and the serial run included), largest worker {max(WORKER_PEAKS, default=0) / 1024:.0f} MB")


if __name__ == "__main__":
    main()
