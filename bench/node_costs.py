"""What governance costs a node per reply: fingerprint, update digest and signature, and the
evaluation of the received model on the node's local test split (client.app.local_evaluation),
beside one round of local training for scale.

Usage: python bench/node_costs.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

from flwr.app import ArrayRecord, MetricRecord, RecordDict

import torch

from client.app import local_evaluation, summary_rule
from fedgov.summaries import summarize, summary_text
from server.app import monitoring_reference
from client.attestation import attest
from fedgov.models import build_model
from governance.fingerprint import fingerprint_arrays
from governance.identity import NodeKey
from fedgov.partition import load_partition
from fedgov.settings import RunSettings
from fedgov.training import train


def per_call_ms(fn, repeats: int) -> float:
    """Median milliseconds of one call: on a shared machine the mean is mostly other processes' time."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    key = NodeKey.generate()
    training = RunSettings.from_run_config().training
    cpu = torch.device("cpu")
    print("| dataset (model) | rows (train / local test) | fingerprint (ms) | digests + Ed25519 signature (ms) | "
          "local evaluation of the received model (ms) | data summary, shared bins (ms) | local training, default epochs (ms) |")
    print("|---|---|---|---|---|---|---|")
    for dataset in ("breast-cancer", "digits"):
        part = load_partition(dataset, 0, 10)
        fingerprint = fingerprint_arrays(part.train.x, part.train.y)
        arrays = ArrayRecord(build_model(dataset).state_dict())

        def sign() -> None:
            content = RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 10, "train-loss": 0.1})})
            attest(content, key, "sim-0000", "123", 1, fingerprint)

        model = build_model(dataset)

        def fit() -> None:
            train(build_model(dataset), part.train, epochs=training.local_epochs, batch_size=training.batch_size,
                  lr=training.lr, device=cpu, seed=1)

        settings = RunSettings.from_run_config({"dataset": dataset})
        reference, rule = monitoring_reference(settings), summary_rule(settings, None)
        summary_ms = per_call_ms(lambda: summary_text(summarize(part.train.x, part.train.y, reference, rule)),
                                 args.repeats)
        fp_ms = per_call_ms(lambda: fingerprint_arrays(part.train.x, part.train.y), args.repeats)
        eval_ms = per_call_ms(lambda: local_evaluation(model, part, cpu), args.repeats)
        train_ms = per_call_ms(fit, max(1, args.repeats // 10))
        print(f"| {dataset} | {len(part.train)} / {len(part.test)} | {fp_ms:.3f} | {per_call_ms(sign, args.repeats):.3f} "
              f"| {eval_ms:.3f} | {summary_ms:.3f} | {train_ms:.1f} |")


if __name__ == "__main__":
    main()
