"""Rehearsal: what a simulated node makes go wrong on purpose.

- Faults (`--faults PARTITION:KIND`): a simulated node sends a malformed or hostile reply.
- Drift (`--drift NODE@ROUND`): a node's data changes from a round on.
- Hard data (`--hard NODE,...`): a node's labels are rotated, so the federation's model fails it.
- Traces (`--trace-dir`): each node writes which pool rows it trained on.

Only the simulation harness's ClientApp (`simulations/client_app.py`) and launcher import this
module; the deployed ServerApp and ClientApp cannot reach it, so a coordinator's run config can
never make a real node corrupt its reply or change its data. It is the node's side only (every Ray
actor loads it); the coordinator's side of a rehearsal, scheduled withdrawal of consent
(`--revoke NODE@ROUND`), is `simulations/withdrawals.py`. The settings parse the rehearsal strings
(`fedgov.settings.Rehearsal`); the kinds of fault are named there and acted on here.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from fedgov.partition import Partition
from fedgov.protocol import (ARRAYS_KEY, GOVERNANCE_KEY, LOCAL_ACCURACY_KEY, METRICS_KEY, NUM_EXAMPLES_KEY,
                             SUMMARY_KEY, SUMMARY_TEXT_KEY)
from fedgov.summaries import summary_text
from governance.identity import NodeKey
from governance.private_files import UMASK_MODE, write_atomic


# -- faults ---------------------------------------------------------------------------------

def _first(arrays: ArrayRecord) -> str:
    return next(iter(arrays.keys()))


def _nan(content: RecordDict) -> None:
    arrays = content[ARRAYS_KEY]
    key = _first(arrays)
    values = arrays[key].numpy().copy()
    values.flat[0] = np.nan
    arrays[key] = Array(values)


def _shape(content: RecordDict) -> None:
    arrays = content[ARRAYS_KEY]
    key = _first(arrays)
    arrays[key] = Array(np.zeros((3, 3), dtype=np.float32))


def _dtype(content: RecordDict) -> None:
    arrays = content[ARRAYS_KEY]
    key = _first(arrays)
    arrays[key] = Array(arrays[key].numpy().astype(np.float64))


def _extra_array(content: RecordDict) -> None:
    content[ARRAYS_KEY]["smuggled"] = Array(np.zeros(4, dtype=np.float32))


def _missing_array(content: RecordDict) -> None:
    del content[ARRAYS_KEY][_first(content[ARRAYS_KEY])]


def _missing_num_examples(content: RecordDict) -> None:
    del content[METRICS_KEY][NUM_EXAMPLES_KEY]


def _extra_metric(content: RecordDict) -> None:
    content[METRICS_KEY]["partition-size-leak"] = 1.0


def _extra_record(content: RecordDict) -> None:
    content["rows"] = ConfigRecord({"leaked": "raw data must never leave the node"})


def _unsigned(content: RecordDict) -> None:
    del content[GOVERNANCE_KEY]["signature"]


def _forged(content: RecordDict) -> None:
    """Sign with a key the coordinator never registered for this node."""
    content[GOVERNANCE_KEY]["signature"] = NodeKey.generate().sign(b"forged by an impostor")


def _bad_npy(content: RecordDict) -> None:
    """Bytes of the right length that are no .npy array: numpy's loader raises on them."""
    arrays = content[ARRAYS_KEY]
    key = _first(arrays)
    real = arrays[key]
    arrays[key] = Array(dtype=real.dtype, shape=tuple(real.shape), stype=real.stype, data=b"\x93NUMPY garbage" * 8)


def _foreign_stype(content: RecordDict) -> None:
    arrays = content[ARRAYS_KEY]
    key = _first(arrays)
    real = arrays[key]
    arrays[key] = Array(dtype=real.dtype, shape=tuple(real.shape), stype="torch.Tensor", data=real.data)


def _inflated_examples(content: RecordDict) -> None:
    """Claim a million examples (signed, so only the fingerprint's row count can tell)."""
    content[METRICS_KEY][NUM_EXAMPLES_KEY] = 1_000_000


def _bad_accuracy(content: RecordDict) -> None:
    """Claim (and sign) a local accuracy no evaluation can give."""
    content[METRICS_KEY][LOCAL_ACCURACY_KEY] = 1.5


def _huge_metric(content: RecordDict) -> None:
    content[METRICS_KEY]["train-loss"] = 2**60  # beyond what JSON (RFC 8785) carries exactly


def _deep_fingerprint(content: RecordDict) -> None:
    content[GOVERNANCE_KEY]["fingerprint"] = "[" * 60_000  # nesting that a recursive parser cannot follow


def _edit_summary(content: RecordDict, edit: Callable[[dict], None]) -> None:
    """Change the node's summary before it signs (a node that lies in its own summary); none sent, nothing to change."""
    if SUMMARY_KEY not in content:
        return
    summary = json.loads(content[SUMMARY_KEY][SUMMARY_TEXT_KEY])
    edit(summary)
    content[SUMMARY_KEY] = ConfigRecord({SUMMARY_TEXT_KEY: summary_text(summary)})


def _first_feature(summary: dict) -> list:
    return summary["features"][next(iter(sorted(summary["features"])))]


def _summary_negative(content: RecordDict) -> None:
    _edit_summary(content, lambda s: _first_feature(s).__setitem__(0, -3))


def _summary_exposed(content: RecordDict) -> None:
    """A count below the minimum count, sent instead of suppressed: a small group made identifiable."""
    _edit_summary(content, lambda s: _first_feature(s).__setitem__(0, 1))


def _summary_unknown_feature(content: RecordDict) -> None:
    _edit_summary(content, lambda s: s["features"].__setitem__("patient_postcode", list(_first_feature(s))))


SUMMARY_FAULTS: dict[str, Callable[[RecordDict], None]] = {
    "summary-negative": _summary_negative, "summary-exposed": _summary_exposed,
    "summary-unknown-feature": _summary_unknown_feature}

SIGNATURE_FAULTS: dict[str, Callable[[RecordDict], None]] = {
    "unsigned": _unsigned, "forged": _forged, "deep-fingerprint": _deep_fingerprint,
    "bad-npy": _bad_npy, "foreign-stype": _foreign_stype, "huge-metric": _huge_metric}

FAULTS: dict[str, Callable[[RecordDict], None]] = {
    "nan": _nan,
    "shape": _shape,
    "dtype": _dtype,
    "extra-array": _extra_array,
    "missing-array": _missing_array,
    "missing-num-examples": _missing_num_examples,
    "extra-metric": _extra_metric,
    "extra-record": _extra_record,
    "inflated-examples": _inflated_examples,
    "bad-accuracy": _bad_accuracy,
    **SUMMARY_FAULTS,
    **SIGNATURE_FAULTS,
}
# The settings accept exactly the kinds acted on here (tests/fedgov/test_settings.py holds them equal).


def apply_fault(kind: str, content: RecordDict) -> None:
    """Corrupt a reply in place the way `kind` says."""
    FAULTS[kind](content)


# -- drift ----------------------------------------------------------------------------------

def drifted(partition: Partition, server_round: int, drift: dict[str, int], node_id: str) -> Partition:
    """From its drift round on, a node's data changes: its features shift by +0.5.

    The dataset fingerprint the node signs must change with it.
    """
    start = drift.get(node_id)
    if start is None or server_round < start:
        return partition
    train = replace(partition.train, x=(partition.train.x + np.float32(0.5)).astype(np.float32))
    return replace(partition, train=train)


# -- hard data ------------------------------------------------------------------------------

def made_hard(partition: Partition, node_id: str, hard: frozenset[str]) -> Partition:
    """A hard node's labels are rotated, y -> (y + 1) mod C, on its train and its local test split:
    the federation's model is then wrong for this node, and its local accuracy shows it."""
    if node_id not in hard:
        return partition

    def rotated(data):
        return replace(data, y=((data.y + 1) % data.num_classes).astype(data.y.dtype))

    return replace(partition, train=rotated(partition.train), test=rotated(partition.test))


# -- traces ---------------------------------------------------------------------------------

def write_trace(trace_dir: str, partition: Partition, server_round: int) -> None:
    """Node-side record of what this node trained on (row indices into its own pool)."""
    if not trace_dir:
        return
    path = Path(trace_dir) / f"node-{partition.partition_id}-round-{server_round}.json"
    # whole or absent: a node still training when the run ends is stopped mid-call (simulations/engine.py)
    write_atomic(path, json.dumps({
        "partition_id": partition.partition_id,
        "round": server_round,
        "pool_indices": partition.indices.tolist(),
        "train_rows": len(partition.train),
    }).encode(), mode=UMASK_MODE, durable=False)
