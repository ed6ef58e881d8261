"""What roles cost a writer: bulk append with no auditor, with an auditor (operator-readable rows), and sealed rows.

Each configuration builds its own SQLite ledger and appends `--entries` entries of 50 node
scopes in batches of `--batch`; the three run interleaved `--repeat` times and the medians are
printed (wall and CPU seconds of the `append()` calls only). Then another process's unsigned
tail of one batch is checkpointed: rule 3b (AEAD of every row, no auditor) against rule 3a
(one batch authenticator, auditor registered; the sealed rows cannot be decrypted by the signer).

Usage: python bench/roles_bench.py [--entries 50000] [--batch 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from governance.identities import Identity
from governance.ledger import EntryDraft, Ledger, create_workspace

CONFIGS = {"no auditor": (False, "round.reply"), "auditor, operator-readable rows": (True, "run.note"),
           "auditor, sealed rows (round.reply)": (True, "round.reply")}


def drafts(n: int, start: int, entry_type: str) -> list[EntryDraft]:
    return [EntryDraft(entry_type, {"n_samples": 512, "loss": 0.1234, "i": start + i}, f"node:n{(start + i) % 50}",
                       run_id="run-1", round=(start + i) // 1000, node_id=f"n{(start + i) % 50}",
                       model_hash="ab" * 32, config_hash="cd" * 32) for i in range(n)]


def one(tmp: Path, auditor: bool, entry_type: str, entries: int, batch: int) -> tuple[float, float, float]:
    ws = create_workspace(tmp / ".fedgov", "bench")
    with Ledger.open(ws, "bench") as ledger:
        if auditor:
            ledger.register_identity(Identity.generate("auditor", "auditor").public, "bench")
        work = [drafts(min(batch, entries - done), done, entry_type) for done in range(0, entries, batch)]
        wall = cpu = 0.0
        for chunk in work:
            w0, c0 = time.perf_counter(), time.process_time()
            ledger.append(chunk)
            wall += time.perf_counter() - w0
            cpu += time.process_time() - c0
        ledger.checkpoint()
    with Ledger.open(ws, "bench") as writer:  # another writer's tail, then a signer that did not write it
        writer.append(drafts(batch, entries, entry_type))
    with Ledger.open(ws, "bench") as signer:
        t0 = time.perf_counter()
        signer.checkpoint()
        sign_s = time.perf_counter() - t0
    return wall, cpu, sign_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in CONFIGS}
    for _ in range(args.repeat):
        for name, (auditor, entry_type) in CONFIGS.items():
            with tempfile.TemporaryDirectory() as tmp:
                results[name].append(one(Path(tmp), auditor, entry_type, args.entries, args.batch))
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}; "
          f"{args.entries} entries in batches of {args.batch}, medians of {args.repeat}")
    base = statistics.median(r[1] for r in results["no auditor"])
    for name, rows in results.items():
        wall, cpu, sign_s = (statistics.median(r[i] for r in rows) for i in range(3))
        print(f"{name:36} append {args.entries / wall:>9,.0f} entries/s wall, {args.entries / cpu:>9,.0f} /s CPU "
              f"({cpu / base - 1:+.1%} CPU); checkpoint over another writer's {args.batch}-entry tail "
              f"{sign_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
