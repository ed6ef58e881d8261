"""What signing every write costs, and what a shred (which replaces the KEK) costs.

Every command that writes now signs a checkpoint in the same transaction: one consistency
proof from the stored tree, one Ed25519 signature, checks against the database's latest
checkpoint and the workspace's signed head, and the head file written atomically. This
measures `append(sign=True)` against `append()` for a one-entry write (what `consent revoke`
does) at several ledger sizes, and `shred` with many live data keys to re-wrap.

Usage: python bench/signed_writes.py [--sizes 1000,100000,1000000] [--repeats 200] [--scopes 1000]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sqlite3
import tempfile
import time
from pathlib import Path

from governance.ledger import EntryDraft, Ledger, create_workspace

PASSPHRASE = "bench"


def _grow(ledger: Ledger, size: int) -> None:
    done = ledger.size()
    while done < size:
        n = min(50_000, size - done)
        ledger.append([EntryDraft("round.reply", {"i": done + i, "loss": 0.25}, f"node:n{(done + i) % 50}",
                                  run_id="run-1", round=(done + i) // 1000, node_id=f"n{(done + i) % 50}")
                       for i in range(n)])
        done += n
    ledger.checkpoint()


def _time_writes(ledger: Ledger, repeats: int, sign: bool) -> list[float]:
    times = []
    for i in range(repeats):
        draft = EntryDraft("consent.withdrawn", {"record_id": f"consent-{i}", "reason": "bench"}, "node:n1",
                           node_id="n1")
        t0 = time.perf_counter()
        ledger.append([draft], sign=sign)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--scopes", type=int, default=1000, help="live data keys that a shred re-wraps")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}, "
          f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=FULL)")
    with tempfile.TemporaryDirectory() as tmp:
        ws = create_workspace(Path(tmp) / ".fedgov", PASSPHRASE)
        with Ledger.open(ws, PASSPHRASE) as ledger:
            print("ledger size | append one entry (ms, median / p95) | append + sign in the same transaction | "
                  "added by signing")
            for size in (int(s) for s in args.sizes.split(",")):
                _grow(ledger, size)
                plain = _time_writes(ledger, args.repeats, sign=False)
                ledger.checkpoint()
                signed = _time_writes(ledger, args.repeats, sign=True)
                p50, s50 = statistics.median(plain), statistics.median(signed)
                p95 = statistics.quantiles(plain, n=20)[-1]
                s95 = statistics.quantiles(signed, n=20)[-1]
                print(f"{size:>11,} | {p50:.2f} / {p95:.2f} | {s50:.2f} / {s95:.2f} | {s50 - p50:+.2f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        ws = create_workspace(Path(tmp) / ".fedgov", PASSPHRASE)
        with Ledger.open(ws, PASSPHRASE) as ledger:
            ledger.append([EntryDraft("round.reply", {"i": i}, f"node:n{i}", node_id=f"n{i}")
                           for i in range(args.scopes)], sign=True)
            t0 = time.perf_counter()
            ledger.shred("node:n7", actor="bench", reason="bench")
            shred_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            ledger.rotate_kek(actor="bench")
            rotate_s = time.perf_counter() - t0
        print(f"shred with {args.scopes} live data keys (re-wrap all, new KEK, keystore written twice, signed): "
              f"{shred_s * 1000:.0f} ms; rotate-kek: {rotate_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
