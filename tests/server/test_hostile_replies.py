"""Every byte from a node is hostile: randomly mutated replies through the real reply checks never raise.

Each case starts from a genuine signed reply of a registered node and breaks it one
random way (array bytes, declared shapes and dtypes, serialization type, metrics, the
governance statement, the records themselves), seeded so a failure can be replayed. The
structure check and the signature check must each return a reason or accept; nothing
they do may raise, whatever the bytes.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from client.attestation import attest
from fedgov.models import build_model
from fedgov.protocol import GOVERNED_RECORDS
from governance.fingerprint import fingerprint_arrays
from governance.identity import NodeKey, NodeRegistry
from server.overhead import Overhead
from server.replies import model_spec, split_replies
from server.reply_verifier import ReplyVerifier
from tests.server.node_reply import FLOWER_ID, NODE, RUN, reply_of

CASES = 400



def _genuine(key: NodeKey) -> RecordDict:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(37, 30)), rng.integers(0, 2, size=37)
    content = RecordDict({"arrays": ArrayRecord(build_model("breast-cancer", seed=1).state_dict()),
                          "metrics": MetricRecord({"train-loss": 0.5, "local-loss": 0.6, "local-accuracy": 0.75,
                                                   "num-examples": 37})})
    attest(content, key, NODE, RUN, 1, fingerprint_arrays(x, y))
    return content


def _mutate(content: RecordDict, rnd: random.Random) -> str:
    """Break `content` one random way, in place; return what was done (for the failure message)."""
    arrays, metrics, statement = content["arrays"], content["metrics"], content["governance"]
    key = rnd.choice(list(arrays.keys()))
    real = arrays[key]
    kind = rnd.randrange(12)
    if kind == 0:  # random bytes, any length up to twice the real one
        data = rnd.randbytes(rnd.randrange(0, 2 * len(real.data) + 2))
        arrays[key] = Array(dtype=real.dtype, shape=tuple(real.shape), stype=real.stype, data=data)
    elif kind == 1:  # flip bits in the real bytes (header or payload)
        data = bytearray(real.data)
        for _ in range(rnd.randrange(1, 8)):
            data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        arrays[key] = Array(dtype=real.dtype, shape=tuple(real.shape), stype=real.stype, data=bytes(data))
    elif kind == 2:  # a declared shape that lies
        shape = tuple(rnd.choice([0, 1, 3, 2**31, 2**62, rnd.randrange(100)]) for _ in range(rnd.randrange(0, 4)))
        arrays[key] = Array(dtype=real.dtype, shape=shape, stype=real.stype, data=real.data)
    elif kind == 3:  # a declared dtype that lies
        dtype = rnd.choice(["float64", "int8", "object", "<U5", "", "float32\x00", "V16"])
        arrays[key] = Array(dtype=dtype, shape=tuple(real.shape), stype=real.stype, data=real.data)
    elif kind == 4:  # another serialization
        arrays[key] = Array(dtype=real.dtype, shape=tuple(real.shape), stype=rnd.choice(["pickle", "", "numpy"]),
                            data=real.data)
    elif kind == 5:  # a real .npy of another dtype or shape, honestly declared
        values = rnd.choice([np.zeros((2, 2), dtype=np.float64), np.array(["x"]), np.zeros(0), np.zeros((1, 1, 1))])
        arrays[key] = Array(values)
    elif kind == 6:  # metric values at the edges
        metrics[rnd.choice(["train-loss", "num-examples", "x", "local-loss", "local-accuracy"])] = rnd.choice(
            [float("nan"), float("inf"), 2**60, -(2**60), 0, -1, 10**6, [1.0] * 5000, [], [float("nan")], True,
             1.5, -0.5, [0.5]])
    elif kind == 7:  # many or long metric names
        for i in range(rnd.choice([1, 70])):
            metrics["m" * rnd.choice([1, 200]) + str(i)] = 1.0
    elif kind == 8:  # the fingerprint text
        statement["fingerprint"] = rnd.choice(["[" * 50_000, "{" * 3000, "x" * 70_000, "null", "[]", "1e999",
                                               '{"rows": 1e999}', '{"content_hash": [], "schema_hash": {}, '
                                               '"rows": "many", "label_counts": 5}', "\ud800", ""])
    elif kind == 9:  # the signature and node id
        statement[rnd.choice(["signature", "node-id"])] = rnd.choice(
            [b"", rnd.randbytes(64), rnd.randbytes(10_000), "text", 7, [1, 2], NODE])
    elif kind == 10:  # records of the wrong type or name
        rnd.choice([lambda: content.__setitem__("rows", ConfigRecord({"raw": "data"})),
                    lambda: content.__setitem__("metrics", ArrayRecord()),
                    lambda: content.__delitem__("governance"),
                    lambda: content.__setitem__("governance", MetricRecord({"x": 1}))])()
    else:  # truncated .npy: only the header, or cut in the data
        cut = rnd.choice([6, 10, 64, len(real.data) - 1])
        arrays[key] = Array(dtype=real.dtype, shape=tuple(real.shape), stype=real.stype, data=real.data[:cut])
    return f"kind {kind} on {key}"


@pytest.fixture(scope="module")
def checks():
    key = NodeKey.generate()
    registry = NodeRegistry()
    registry.register(NODE, key.public_bytes(), "team")
    verifier = ReplyVerifier(RUN, {FLOWER_ID: NODE}, registry, Overhead())
    spec = model_spec(ArrayRecord(build_model("breast-cancer").state_dict()))
    return key, verifier, spec


def _judge(verifier: ReplyVerifier, spec: dict, content: RecordDict) -> str | None:
    """The coordinator's verdict, as GovernedStrategy.aggregate_train reaches it: a reason, or None."""
    valid, rejected = split_replies([reply_of(content)], spec, GOVERNED_RECORDS)
    if rejected:
        return rejected[0].reason
    return verifier.check(1, *valid[0])


def test_the_genuine_reply_is_accepted(checks) -> None:
    key, verifier, spec = checks
    assert _judge(verifier, spec, _genuine(key)) is None


@pytest.mark.parametrize("key, value, reason", [
    ("local-accuracy", 1.5, "metric 'local-accuracy' must be a number within [0, 1], got 1.5"),
    ("local-loss", -0.1, "metric 'local-loss' must be a number >= 0, got -0.1"),
])
def test_a_signed_reply_claiming_an_impossible_local_accuracy_or_loss_is_rejected_by_name(checks, key, value,
                                                                                         reason) -> None:
    node_key, verifier, spec = checks
    content = _genuine(node_key)
    content["metrics"][key] = value
    del content["governance"]
    rng = np.random.default_rng(0)
    attest(content, node_key, NODE, RUN, 1, fingerprint_arrays(rng.normal(size=(37, 30)), rng.integers(0, 2, size=37)))
    assert _judge(verifier, spec, content) == reason  # the node signed it: the signature is no excuse


def test_randomly_mutated_replies_are_rejected_by_name_and_never_raise(checks) -> None:
    key, verifier, spec = checks
    rnd = random.Random(20261129)
    outcomes: dict[str, int] = {}
    for case in range(CASES):
        content = _genuine(key)
        try:
            what = _mutate(content, rnd)
        except (TypeError, ValueError):  # Flower itself refused to build it: nothing to send
            outcomes["refused by Flower"] = outcomes.get("refused by Flower", 0) + 1
            continue
        try:
            reason = _judge(verifier, spec, content)
        except Exception as err:  # noqa: BLE001 - the assertion is that nothing escapes
            pytest.fail(f"case {case} ({what}) raised {type(err).__name__}: {err}")
        verdict = "accepted" if reason is None else reason.split(":")[0].split(" (")[0][:40]
        outcomes[verdict] = outcomes.get(verdict, 0) + 1
    rejected = CASES - outcomes.get("accepted", 0) - outcomes.get("refused by Flower", 0)
    assert rejected > CASES * 0.6, outcomes
    # the only mutations that may pass change nothing the node signed (e.g. a metric set to its own value)
    assert outcomes.get("accepted", 0) < CASES * 0.05, outcomes


def test_weight_follows_the_signed_fingerprint() -> None:
    from governance.fingerprint import DatasetFingerprint
    from server.reply_verifier import weight_problem

    honest = DatasetFingerprint("a" * 64, "b" * 64, 91, {"0": 40, "1": 51})
    assert weight_problem(91, honest) is None
    assert weight_problem(10**6, honest) == ("num-examples 1000000 disagrees with the 91 rows of the node's signed "
                                            "dataset fingerprint (weight must follow evidence)")
    padded = DatasetFingerprint("a" * 64, "b" * 64, 10**6, {"0": 40, "1": 51})  # version 1, an earlier node's
    assert weight_problem(10**6, padded) == "dataset fingerprint claims 1000000 rows but its label counts sum to 91"
    current = DatasetFingerprint("a" * 64, "b" * 64, 91)  # version 2: no label counts
    assert weight_problem(91, current) is None and weight_problem(92, current).startswith("num-examples 92 disagrees")
