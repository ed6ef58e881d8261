"""What the coordinator's reply checks cost per reply: structure, then signature and evidence.

Runs the real checks (`server.replies.split_replies`, then `ReplyVerifier.check`:
decoding and bounds, digests, the Ed25519 signature, the fingerprint's row count against
`num-examples`) on a genuine signed reply of each bundled model, and on replies broken
three ways (bad .npy bytes, a forged signature, an inflated `num-examples`). Usage:

    python bench/reply_checks.py [--repeats 2000]

Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict  # noqa: E402
from flwr.app.message.message import make_message  # noqa: E402
from flwr.app.metadata import Metadata  # noqa: E402

from client.attestation import attest  # noqa: E402
from fedgov.models import build_model  # noqa: E402
from governance.fingerprint import fingerprint_arrays  # noqa: E402
from governance.identity import NodeKey, NodeRegistry  # noqa: E402
from fedgov.protocol import GOVERNED_RECORDS  # noqa: E402
from server.overhead import Overhead  # noqa: E402
from server.replies import model_spec, split_replies  # noqa: E402
from server.reply_verifier import ReplyVerifier  # noqa: E402

NODE, FLOWER_ID, RUN, ROWS = "sim-0000", 4242, "77", 57


def reply(content: RecordDict):
    metadata = Metadata(run_id=int(RUN), message_id="reply", src_node_id=FLOWER_ID, dst_node_id=1,
                        reply_to_message_id="instruction", group_id="1", created_at=time.time(), ttl=3600,
                        message_type="train")
    return make_message(metadata, content)


def genuine(dataset: str, key: NodeKey, num_examples: int = ROWS, forge: bool = False,
            bad_npy: bool = False) -> RecordDict:
    rng = np.random.default_rng(0)
    features = 30 if dataset == "breast-cancer" else 64
    x, y = rng.normal(size=(ROWS, features)), rng.integers(0, 2, size=ROWS)
    arrays = ArrayRecord(build_model(dataset, seed=1).state_dict())
    content = RecordDict({"arrays": arrays, "metrics": MetricRecord({"train-loss": 0.5, "num-examples": num_examples})})
    attest(content, NodeKey.generate() if forge else key, NODE, RUN, 1, fingerprint_arrays(x, y))
    if bad_npy:  # broken after signing, as a hostile node sends it
        first = next(iter(arrays.keys()))
        real = arrays[first]
        arrays[first] = Array(dtype=real.dtype, shape=tuple(real.shape), stype=real.stype, data=b"\x93NUMPY garbage")
    return content


def judge(verifier: ReplyVerifier, spec: dict, content: RecordDict) -> str | None:
    valid, rejected = split_replies([reply(content)], spec, GOVERNED_RECORDS)
    return rejected[0].reason if rejected else verifier.check(1, *valid[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    key = NodeKey.generate()
    registry = NodeRegistry()
    registry.register(NODE, key.public_bytes(), "team")
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}, "
          f"repeats {args.repeats}\n")
    print("| model | reply | bytes of arrays | median µs per reply | p95 µs | verdict |")
    print("|---|---|---|---|---|---|")
    for dataset in ("breast-cancer", "digits"):
        verifier = ReplyVerifier(RUN, {FLOWER_ID: NODE}, registry, Overhead())
        spec = model_spec(ArrayRecord(build_model(dataset).state_dict()))
        cases = {"genuine": genuine(dataset, key), "bad .npy bytes": genuine(dataset, key, bad_npy=True),
                 "forged signature": genuine(dataset, key, forge=True),
                 "num-examples 10^6": genuine(dataset, key, num_examples=1_000_000)}
        for name, content in cases.items():
            size = sum(len(a.data) for a in content["arrays"].values())
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                verdict = judge(verifier, spec, content)
                times.append((time.perf_counter() - start) * 1e6)
            times.sort()
            shown = "accepted" if verdict is None else verdict[:60]
            print(f"| {dataset} | {name} | {size:,} | {statistics.median(times):,.0f} | "
                  f"{times[int(0.95 * len(times))]:,.0f} | {shown} |")


if __name__ == "__main__":
    main()
