"""Ledger benchmark: append throughput, full verification, inclusion proofs, indexed queries.

Usage: python bench/ledger_bench.py --entries 1000000 [--batch 10000] [--db-url URL] [--auditor] [--type T]

It measures this machine's floors in plain Python (issue 13, item 0), in the same run, and
prints each result beside them as a ratio, since machines of this kind differ by up to 2.5x from
day to day:

- the append floor: per entry, RFC 8785-style JSON of a typical payload (`json.dumps`, sorted keys,
  no spaces), AES-256-GCM with a fresh 12-byte nonce, SHA-256 of the leaf, and a batched SQLite
  insert (`executemany`, WAL, `synchronous=FULL`, one commit per batch): no tree, no ORM. Each
  floor batch runs just before fedgov's batch of the same entries, so on a shared machine both
  see the same load (measured one after the other, the ratio swung from 0.5 to 0.9 with the
  other workloads);
- the verify floor: one core scanning those rows back, encoding each leaf (`json.dumps` of the
  row's fields) and hashing it.

Each time is printed with the process's peak resident memory so far (`ru_maxrss`); with
`--db-url` the PostgreSQL server's own memory is its processes', not counted here.

`--auditor` registers an auditor identity first (docs/access-policy.md): every batch then carries
a batch authenticator, new data keys are granted to the auditor, and `--type round.reply` makes
every entry sealed (encrypted under per-scope sealed keys wrapped only to the auditor).
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

import hashlib
import json

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from governance.ledger import EntryDraft, Ledger, create_workspace
from governance.ledger.verify import verify_ledger
from governance.verify.checkpoint import parse_checkpoint
from governance.verify.merkle import verify_inclusion


class Floor:
    """The append and verify floors (module docstring), plain Python on this machine, one batch at a time."""

    def __init__(self, tmp: Path) -> None:
        self.aead = AESGCM(AESGCM.generate_key(256))
        self.conn = sqlite3.connect(tmp / "floor.sqlite")
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")  # as the ledger's own SQLite: durable when a batch commits
        self.conn.execute("CREATE TABLE e (seq INTEGER PRIMARY KEY, ts TEXT, type TEXT, run TEXT, round INTEGER, "
                          "node TEXT, ct BLOB, leaf BLOB)")
        self.append_s = self.append_cpu_s = 0.0

    def append(self, start: int, count: int) -> None:
        """Encode, encrypt, hash and insert entries start..start+count-1 as one committed batch; add its time."""
        aead = self.aead
        t0, c0 = time.perf_counter(), time.process_time()
        rows = []
        for seq in range(start, start + count):
            payload = json.dumps({"i": seq, "loss": 0.1234, "n_samples": 512}, sort_keys=True,
                                 separators=(",", ":")).encode()
            nonce = os.urandom(12)
            ct = nonce + aead.encrypt(nonce, payload, b"ledger|%d" % seq)
            leaf = hashlib.sha256(b"\x00" + ct).digest()
            rows.append((seq, "2026-11-30T00:00:00Z", "update_received", "run-1", seq // 1000, f"n{seq % 50}", ct, leaf))
        self.conn.executemany("INSERT INTO e VALUES (?,?,?,?,?,?,?,?)", rows)
        self.conn.commit()
        self.append_s += time.perf_counter() - t0
        self.append_cpu_s += time.process_time() - c0

    def verify_s(self) -> float:
        """Seconds for one core to scan every row back, encode its leaf and hash it."""
        t0 = time.perf_counter()
        for seq, ts, kind, run, rnd, node, ct, _ in self.conn.execute("SELECT * FROM e ORDER BY seq"):
            leaf = json.dumps({"ct": ct.hex(), "node": node, "round": rnd, "run": run, "seq": seq, "ts": ts,
                               "type": kind}, sort_keys=True, separators=(",", ":")).encode()
            hashlib.sha256(b"\x00" + leaf).digest()
        seconds = time.perf_counter() - t0
        self.conn.close()
        return seconds


def floors(entries: int, batch: int, tmp: Path) -> tuple[float, float]:
    """(append floor in entries/s, verify floor in seconds), the batches one after another: bench/verify_bench.py's."""
    floor = Floor(tmp)
    for start in range(0, entries, batch):
        floor.append(start, min(batch, entries - start))
    return entries / floor.append_s, floor.verify_s()


def peak_mb() -> str:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--db-url", default=None, help="PostgreSQL URL of an EMPTY database (default: SQLite)")
    parser.add_argument("--auditor", action="store_true", help="register an auditor identity before appending")
    parser.add_argument("--type", default="update_received", help="entry type appended (round.reply: sealed)")
    args = parser.parse_args()
    passphrase = "bench"
    with tempfile.TemporaryDirectory() as tmp:
        floor = Floor(Path(tmp))
        ws = create_workspace(Path(tmp) / ".fedgov", passphrase, db_url=args.db_url)
        nodes = 50
        with Ledger.open(ws, passphrase) as ledger:
            if args.auditor:
                from governance.identities import Identity

                ledger.register_identity(Identity.generate("bench-auditor", "auditor").public, "bench")
            # Only the append() calls are timed: building the caller's EntryDrafts is not ledger work.
            append_s = append_cpu_s = drafts_s = 0.0
            done = 0
            while done < args.entries:
                n = min(args.batch, args.entries - done)
                floor.append(done, n)
                t0 = time.perf_counter()
                drafts = [EntryDraft(args.type, {"n_samples": 512, "loss": 0.1234, "i": done + i},
                                     f"node:n{(done + i) % nodes}", run_id="run-1",
                                     round=(done + i) // (nodes * 20), node_id=f"n{(done + i) % nodes}",
                                     model_hash="ab" * 32, config_hash="cd" * 32) for i in range(n)]
                t1, c1 = time.perf_counter(), time.process_time()
                ledger.append(drafts)
                append_s += time.perf_counter() - t1
                append_cpu_s += time.process_time() - c1
                drafts_s += t1 - t0
                done += n
            append_floor = args.entries / floor.append_s
            append_mb = peak_mb()
            t0 = time.perf_counter()
            cp = parse_checkpoint(ledger.checkpoint())
            checkpoint_s = time.perf_counter() - t0
            size = cp.size
            probes = [(size * k) // 997 for k in range(997)]
            t0 = time.perf_counter()
            proofs = [ledger.inclusion_proof(i, size) for i in probes]
            proof_ms = (time.perf_counter() - t0) / len(probes) * 1000
            for i, proof in zip(probes[:20], proofs[:20]):
                verify_inclusion(i, size, ledger.get(i).leaf_hash, proof, cp.root)
            t0 = time.perf_counter()
            rounds = max(1, args.entries // (nodes * 20))
            hits = 0
            for k in range(200):
                hits += len(ledger.query(run_id="run-1", round=k % rounds, node_id=f"n{k % nodes}"))
            query_ms = (time.perf_counter() - t0) / 200 * 1000
            # What the one type-led index trades (store.py): a query naming only a node scans it.
            t0 = time.perf_counter()
            node_hits = sum(len(ledger.query(node_id=f"n{k}")) for k in range(5))
            node_ms = (time.perf_counter() - t0) / 5 * 1000
            t0 = time.perf_counter()
            run_hits = len(ledger.query(run_id="run-1", round=rounds // 2))
            run_round_ms = (time.perf_counter() - t0) * 1000
            reads_mb = peak_mb()
        verify_floor = floor.verify_s()
        t0 = time.perf_counter()
        report = verify_ledger(ws)
        verify_s = time.perf_counter() - t0
        verify_mb = peak_mb()
    backend = "PostgreSQL" if args.db_url else "SQLite"
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}, {backend}"
          + (f" {sqlite3.sqlite_version}" if backend == "SQLite" else ""))
    print(f"entries: {args.entries} (batch {args.batch}), type {args.type}, "
          f"{'an auditor registered' if args.auditor else 'no auditor'}")
    if args.db_url:
        print("peak RSS: this process only; the PostgreSQL server's memory is in its own processes")
    print(f"append floor (plain Python: JSON, AES-256-GCM, SHA-256, batched WAL insert, each batch just before "
          f"fedgov's): {append_floor:,.0f} entries/s")
    print(f"verify floor (one core: scan, encode each leaf, SHA-256): {verify_floor:.2f} s for {args.entries} rows")
    print(f"append (encrypted, tree-updated, committed): {args.entries / append_s:,.0f} entries/s ({append_s:.2f} s; "
          f"building the drafts took another {drafts_s:.2f} s); {args.entries / append_s / append_floor:.2f} x the floor "
          f"(issue 13's target: >= 0.8 on SQLite); {append_mb}")
    print(f"append CPU time of this process: floor {floor.append_cpu_s / args.entries * 1e6:.2f} us/entry, fedgov "
          f"{append_cpu_s / args.entries * 1e6:.2f} us/entry; {floor.append_cpu_s / append_cpu_s:.2f} x"
          + (" (the server's CPU is not counted)" if args.db_url else " (waits for fsync are not CPU time)"))
    print(f"checkpoint (consistency-checked, signed): {checkpoint_s * 1000:.1f} ms")
    print(f"inclusion proof at {size}: {proof_ms:.3f} ms (issue 13's target: <= 1 ms)")
    print(f"query run+round+node: {query_ms:.3f} ms ({hits / 200:.0f} rows each); {reads_mb}")
    print(f"query run+round: {run_round_ms:.1f} ms ({run_hits} rows); query node alone: {node_ms:.1f} ms "
          f"({node_hits / 5:.0f} rows each, the one query no index leads to)")
    print(f"full verify of {report.entries} entries: {verify_s:.2f} s; {verify_s / verify_floor:.2f} x the single-core "
          f"verify floor (issue 13's target: <= 0.5 on SQLite); {verify_mb}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
