"""Moving a ledger from SQLite to PostgreSQL: `fedgov audit move`, timed and its peak memory sampled.

Builds a SQLite workspace holding N signed entries (50 node scopes, as in ledger_bench.py),
creates a PostgreSQL database of its own, runs the real command, then `fedgov audit verify`
and one new signed entry on the moved workspace; the database is dropped at the end.

Usage: python bench/ledger_move.py --entries 100000 [--entries 1000000] [--admin-url URL]
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import measure  # noqa: E402

from governance.ledger import EntryDraft, Ledger, create_workspace  # noqa: E402
from governance.workspace import Workspace  # noqa: E402

PASSPHRASE = "bench"
FEDGOV = str(Path(sys.executable).parent / "fedgov")


def build(path: Path, entries: int, batch: int) -> float:
    """A SQLite workspace with `entries` entries after genesis, the last batch signed; returns seconds taken."""
    t0 = time.perf_counter()
    ws = create_workspace(path, PASSPHRASE)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        done = 0
        while done < entries:
            n = min(batch, entries - done)
            ledger.append([EntryDraft("round.reply", {"n_samples": 512, "loss": 0.1234, "i": done + i},
                                      f"node:n{(done + i) % 50}", run_id="run-1", round=(done + i) // 1000,
                                      node_id=f"n{(done + i) % 50}", model_hash="ab" * 32, config_hash="cd" * 32)
                           for i in range(n)], sign=done + n == entries)
            done += n
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, action="append", help="repeatable (default 100000)")
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--admin-url", default=os.environ.get("FEDGOV_TEST_PG_URL",
                                                              "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    import psycopg

    admin = psycopg.connect(args.admin_url, autocommit=True)
    base = args.admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}, "
          f"SQLite {sqlite3.sqlite_version}, PostgreSQL {admin.info.server_version // 10000}."
          f"{admin.info.server_version % 10000} on {admin.info.host}; load average {os.getloadavg()[0]:.1f}")
    for entries in args.entries or [100_000]:
        name = f"fedgov_bench_move_{uuid.uuid4().hex[:10]}"
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            with tempfile.TemporaryDirectory() as tmp:
                ws = Path(tmp) / "ws"
                built = build(ws, entries, args.batch)
                size = (ws / "ledger.db").stat().st_size
                env = {**os.environ, "FEDGOV_PASSPHRASE": PASSPHRASE}
                env.pop("FEDGOV_DB_URL", None)
                moved = measure([FEDGOV, "audit", "move", "--workspace", str(ws), "--to", f"{base}/{name}"], env=env)
                if moved.returncode != 0:
                    raise SystemExit(f"move failed:\n{moved.stdout}")
                t0 = time.perf_counter()
                verify = subprocess.run([FEDGOV, "audit", "verify", "--workspace", str(ws)], env=env,
                                        capture_output=True, text=True)
                verify_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                with Ledger.open(Workspace(ws), PASSPHRASE) as ledger:
                    ledger.append([EntryDraft("bench.after_move", {"ok": True}, "node:n0")], sign=True)
                append_s = time.perf_counter() - t0
                if verify.returncode != 0:
                    raise SystemExit(f"verify failed: {verify.stderr}")
                rows = entries + 1
                print(f"\n{rows} entries (SQLite file {size / 2**20:.0f} MiB, built in {built:.1f} s)")
                print(f"fedgov audit move: {moved.wall_s:.1f} s wall ({rows / moved.wall_s:,.0f} entries/s, copy, "
                      f"checks and start-up included), peak RSS {moved.peak_rss_mb:.0f} MB")
                print("  " + "\n  ".join(line for line in moved.stdout.splitlines() if line.startswith("copied")))
                print(f"fedgov audit verify afterwards: {verify_s:.1f} s; first signed append after it: "
                      f"{append_s * 1000:.0f} ms; load average {os.getloadavg()[0]:.1f}")
                sys.stdout.flush()
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


if __name__ == "__main__":
    main()
