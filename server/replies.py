"""Reply validation: a malformed reply is dropped and named, never allowed to end the run.

Flower's FedAvg raises `InconsistentMessageReplies` and stops the ServerApp on a single bad
reply. fedgov checks each reply against the model it sent, keeps the good ones and reports
the rest with the node id and the reason.

Every byte of a reply is hostile input. Each array's bytes are bounded by what its shape
allows before they are decoded, decoded without pickle, and the decoded shape and dtype are
compared with the declared ones and with the model's. Metrics are bounded in number, key
length and list length, and every number must be finite and within ±(2^53-1), so the
ledger (RFC 8785) can record it; the received model's local loss and accuracy, which the
compliance report draws, are single numbers within their ranges (loss ≥ 0, accuracy in [0, 1]). Whatever a decoder still raises on malformed input
(`DECODE_ERRORS`) rejects the reply; it never reaches the run.
"""

from __future__ import annotations

import math
import tokenize
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

from fedgov.protocol import (ALLOWED_RECORDS, ARRAYS_KEY, LOCAL_ACCURACY_KEY, LOCAL_LOSS_KEY, METRICS_KEY,
                             NUM_EXAMPLES_KEY, NamedArrays)

# Bounds on a reply: generous for an honest node, small enough that a hostile one costs little.
MAX_METRICS = 64
MAX_METRIC_KEY = 128
MAX_METRIC_LIST = 4096
MAX_SAFE_INTEGER = 2**53 - 1
NPY_HEADER_ALLOWANCE = 4096  # an .npy header is at most a few hundred bytes
# What decoding malformed bytes may raise: each rejects the reply that caused it.
# (numpy parses an .npy header with the tokenizer: a broken one raises SyntaxError or TokenError.)
DECODE_ERRORS = (ValueError, TypeError, OverflowError, RecursionError, MemoryError, KeyError, IndexError,
                 AttributeError, EOFError, OSError, SyntaxError, tokenize.TokenError)


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


def brief(value: object, limit: int = 60) -> str:
    """A node-supplied value as it may appear in a reason: repr (control characters escaped), cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def model_spec(arrays: ArrayRecord) -> dict[str, ArraySpec]:
    """The spec every reply's arrays must match: the model sent this round."""
    return {k: ArraySpec(tuple(a.shape), str(a.dtype)) for k, a in arrays.items()}


def reply_problem(
    reply: Message,
    spec: Mapping[str, ArraySpec],
    allowed: Mapping[str, type] = ALLOWED_RECORDS,
    decoded: NamedArrays | None = None,
) -> str | None:
    """Return why a train reply is unusable, or None when it is well formed."""
    if reply.has_error():
        return f"node error {brief(reply.error.code)}: {brief(reply.error.reason, 200)}"
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
            return f"unexpected record {brief(key)} (a reply may hold only {', '.join(allowed)})"
        if not isinstance(content[key], allowed[key]):
            return f"record {brief(key)} has the wrong type {type(content[key]).__name__}"
    if ARRAYS_KEY not in content:
        return "missing arrays"
    if METRICS_KEY not in content:
        return "missing metrics"
    problem = _arrays_problem(content[ARRAYS_KEY], spec, [] if decoded is None else decoded)
    return problem or _metrics_problem(content[METRICS_KEY])


def _arrays_problem(arrays: ArrayRecord, spec: Mapping[str, ArraySpec], decoded: NamedArrays) -> str | None:
    got, want = set(arrays.keys()), set(spec)
    if got - want:
        return f"extra arrays {brief(sorted(got - want), 200)}"
    if want - got:
        return f"missing arrays {sorted(want - got)}"
    for key, expected in spec.items():
        array = arrays[key]
        if tuple(array.shape) != expected.shape:
            return f"array {key!r} has shape {brief(tuple(array.shape))}, expected {expected.shape}"
        if str(array.dtype) != expected.dtype:
            return f"array {key!r} has dtype {brief(array.dtype)}, expected {expected.dtype}"
    for key, array in arrays.items():  # the reply's own order, which its digest follows
        expected = spec[key]
        problem = _bytes_problem(key, array, expected)
        if problem:
            return problem
        try:
            values = array.numpy()  # np.load with allow_pickle=False
        except DECODE_ERRORS as err:
            return f"array {key!r} is not a valid .npy array ({type(err).__name__})"
        if tuple(values.shape) != expected.shape or str(values.dtype) != expected.dtype:
            return (f"array {key!r} decodes to shape {tuple(values.shape)} dtype {values.dtype}, but declares and "
                    f"must be shape {expected.shape} dtype {expected.dtype}")
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            return f"array {key!r} holds NaN or Inf values"
        decoded.append((key, values))
    return None


def _bytes_problem(key: str, array: object, expected: ArraySpec) -> str | None:
    """Refuse an array whose serialization is not numpy's, or whose bytes exceed what its shape needs."""
    stype, data = getattr(array, "stype", None), getattr(array, "data", None)
    if stype != "numpy.ndarray":
        return f"array {key!r} is serialized as {brief(stype)}, not numpy.ndarray"
    if not isinstance(data, bytes):
        return f"array {key!r} carries {type(data).__name__}, not bytes"
    limit = int(np.prod(expected.shape, dtype=np.int64)) * np.dtype(expected.dtype).itemsize + NPY_HEADER_ALLOWANCE
    if len(data) > limit:
        return f"array {key!r} holds {len(data)} bytes, more than its shape allows ({limit})"
    return None


def _metrics_problem(metrics: MetricRecord) -> str | None:
    if len(metrics) > MAX_METRICS:
        return f"{len(metrics)} metrics, more than {MAX_METRICS}"
    if NUM_EXAMPLES_KEY not in metrics:
        return f"missing {NUM_EXAMPLES_KEY!r} in metrics"
    num = metrics[NUM_EXAMPLES_KEY]
    if not isinstance(num, int) or isinstance(num, bool) or not 1 <= num <= MAX_SAFE_INTEGER:
        return f"{NUM_EXAMPLES_KEY!r} must be a positive integer, got {brief(num)}"
    for key, value in metrics.items():
        if not isinstance(key, str) or not key or len(key) > MAX_METRIC_KEY:
            return f"metric name {brief(key)} is empty or longer than {MAX_METRIC_KEY} characters"
        values = value if isinstance(value, list) else [value]
        if len(values) > MAX_METRIC_LIST:
            return f"metric {brief(key)} lists {len(values)} values, more than {MAX_METRIC_LIST}"
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return f"metric {brief(key)} holds a {type(v).__name__}, not a number"
            if isinstance(v, float) and not math.isfinite(v):
                return f"metric {brief(key)} is NaN or Inf"
            if isinstance(v, int) and abs(v) > MAX_SAFE_INTEGER:
                return f"metric {brief(key)} is outside ±(2^53-1)"
    return local_evaluation_problem(metrics)


# What the node's evaluation of the received model may report: (name, lowest, highest, range as written).
LOCAL_EVALUATION_RANGES = ((LOCAL_LOSS_KEY, 0.0, math.inf, "a number >= 0"),
                           (LOCAL_ACCURACY_KEY, 0.0, 1.0, "a number within [0, 1]"))


def local_evaluation_problem(metrics: Mapping[str, object]) -> str | None:
    """Why the node's local loss or accuracy of the received model is out of range, or None.

    Both are optional (a node of an earlier fedgov does not send them; the report then says "not
    recorded"), but when sent each must be one number within its range: an accuracy of 1.7 or a
    negative loss would otherwise be drawn as a fact about the node.
    """
    for key, lowest, highest, allowed in LOCAL_EVALUATION_RANGES:
        if key not in metrics:
            continue
        value = metrics[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lowest <= value <= highest:
            return f"metric {key!r} must be {allowed}, got {brief(value)}"
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
        try:
            problem = reply_problem(reply, spec, allowed, decoded)
        except DECODE_ERRORS as err:  # bytes no check above foresaw: still only this reply's problem
            problem = f"malformed reply ({type(err).__name__})"
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
                                          f"metric keys {brief(sorted(keys), 200)} differ from the other replies' {brief(sorted(usual), 200)}"))
        valid = [(r, a) for r, a in valid if frozenset(r.content[METRICS_KEY].keys()) == usual]
    return valid, rejected

