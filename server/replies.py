"""Reply validation: a malformed reply is dropped and named, never allowed to end the run.

Flower's FedAvg raises `InconsistentMessageReplies` and stops the ServerApp on a single bad
reply. fedgov checks each reply against the model it sent, keeps the good ones and reports
the rest with the node id and the reason.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

ARRAYS_KEY = "arrays"
METRICS_KEY = "metrics"
NUM_EXAMPLES_KEY = "num-examples"

# What a train reply may hold: weights, metrics and (for governed runs) the node's
# signed statement. Anything else could smuggle data off the node and is rejected.
ALLOWED_RECORDS: Mapping[str, type] = {
    ARRAYS_KEY: ArrayRecord,
    METRICS_KEY: MetricRecord,
}


# A governed reply also carries the node's signed statement (client.attestation).
GOVERNED_RECORDS: Mapping[str, type] = {**ALLOWED_RECORDS, "governance": ConfigRecord}


@dataclass(frozen=True)
class ArraySpec:
    """Shape and dtype of one named array of the model that was sent."""

    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class Rejection:
    """A reply left out of aggregation, and why."""

    node_id: int
    reason: str


def model_spec(arrays: ArrayRecord) -> dict[str, ArraySpec]:
    """The spec every reply's arrays must match: the model sent this round."""
    return {k: ArraySpec(tuple(a.shape), str(a.dtype)) for k, a in arrays.items()}


NamedArrays = list[tuple[str, np.ndarray]]


def reply_problem(
    reply: Message,
    spec: Mapping[str, ArraySpec],
    allowed: Mapping[str, type] = ALLOWED_RECORDS,
    decoded: NamedArrays | None = None,
) -> str | None:
    """Return why a train reply is unusable, or None when it is well formed."""
    if reply.has_error():
        return f"node error {reply.error.code}: {reply.error.reason}"
    if not reply.has_content():
        return "empty reply"
    return content_problem(reply.content, spec, allowed, decoded)


def content_problem(
    content: RecordDict,
    spec: Mapping[str, ArraySpec],
    allowed: Mapping[str, type] = ALLOWED_RECORDS,
    decoded: NamedArrays | None = None,
) -> str | None:
    """Return why a train reply's content is unusable, or None when it is well formed.

    `decoded`, when given, receives the reply's arrays as numpy, so later checks (the
    signature's update digest) need not deserialize them again.
    """
    for key in content.keys():
        if key not in allowed:
            return f"unexpected record {key!r} (a reply may hold only {', '.join(allowed)})"
        if not isinstance(content[key], allowed[key]):
            return f"record {key!r} has the wrong type {type(content[key]).__name__}"
    if ARRAYS_KEY not in content:
        return "missing arrays"
    if METRICS_KEY not in content:
        return "missing metrics"
    problem = _arrays_problem(content[ARRAYS_KEY], spec, [] if decoded is None else decoded)
    return problem or _metrics_problem(content[METRICS_KEY])


def _arrays_problem(arrays: ArrayRecord, spec: Mapping[str, ArraySpec], decoded: NamedArrays) -> str | None:
    got, want = set(arrays.keys()), set(spec)
    if got - want:
        return f"extra arrays {sorted(got - want)}"
    if want - got:
        return f"missing arrays {sorted(want - got)}"
    for key, expected in spec.items():
        array = arrays[key]
        if tuple(array.shape) != expected.shape:
            return f"array {key!r} has shape {tuple(array.shape)}, expected {expected.shape}"
        if str(array.dtype) != expected.dtype:
            return f"array {key!r} has dtype {array.dtype}, expected {expected.dtype}"
    for key, array in arrays.items():  # the reply's own order, which its digest follows
        values = array.numpy()
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            return f"array {key!r} holds NaN or Inf values"
        decoded.append((key, values))
    return None


def _metrics_problem(metrics: MetricRecord) -> str | None:
    if NUM_EXAMPLES_KEY not in metrics:
        return f"missing {NUM_EXAMPLES_KEY!r} in metrics"
    num = metrics[NUM_EXAMPLES_KEY]
    if not isinstance(num, int) or isinstance(num, bool) or num < 1:
        return f"{NUM_EXAMPLES_KEY!r} must be a positive integer, got {num!r}"
    for key, value in metrics.items():
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            return f"metric {key!r} is NaN or Inf"
    return None


def split_replies(
    replies: Iterable[Message],
    spec: Mapping[str, ArraySpec],
    allowed: Mapping[str, type] = ALLOWED_RECORDS,
) -> tuple[list[tuple[Message, NamedArrays]], list[Rejection]]:
    """Partition replies into well-formed ones (with their decoded arrays) and named rejections."""
    valid: list[tuple[Message, NamedArrays]] = []
    rejected: list[Rejection] = []
    for reply in replies:
        decoded: NamedArrays = []
        problem = reply_problem(reply, spec, allowed, decoded)
        if problem is None:
            valid.append((reply, decoded))
        else:
            rejected.append(Rejection(reply.metadata.src_node_id, problem))
    # Flower's strategies also abort when metric keys differ between replies: keep the
    # most common key set and name the odd ones out.
    key_sets = Counter(frozenset(r.content[METRICS_KEY].keys()) for r, _ in valid)
    if len(key_sets) > 1:
        usual = max(key_sets.items(), key=lambda kv: (kv[1], sorted(kv[0])))[0]
        for reply, _ in valid:
            keys = frozenset(reply.content[METRICS_KEY].keys())
            if keys != usual:
                rejected.append(Rejection(reply.metadata.src_node_id,
                                          f"metric keys {sorted(keys)} differ from the other replies' {sorted(usual)}"))
        valid = [(r, a) for r, a in valid if frozenset(r.content[METRICS_KEY].keys()) == usual]
    return valid, rejected

