"""What governance costs a node per reply: fingerprint, update digest and signature.

Usage: python bench/node_costs.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import time

from flwr.app import ArrayRecord, MetricRecord, RecordDict

from client.attestation import attest
from fedgov.models import build_model
from governance.fingerprint import fingerprint_arrays
from governance.identity import NodeKey
from fedgov.partition import load_partition


def per_call_ms(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    key = NodeKey.generate()
    print("| dataset (model) | rows | fingerprint (ms) | digests + Ed25519 signature (ms) |")
    print("|---|---|---|---|")
    for dataset in ("breast-cancer", "digits"):
        part = load_partition(dataset, 0, 10)
        fingerprint = fingerprint_arrays(part.train.x, part.train.y)
        arrays = ArrayRecord(build_model(dataset).state_dict())

        def sign() -> None:
            content = RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 10, "train-loss": 0.1})})
            attest(content, key, "sim-0000", "123", 1, fingerprint)

        fp_ms = per_call_ms(lambda: fingerprint_arrays(part.train.x, part.train.y), args.repeats)
        print(f"| {dataset} | {len(part.train)} | {fp_ms:.3f} | {per_call_ms(sign, args.repeats):.3f} |")


if __name__ == "__main__":
    main()
