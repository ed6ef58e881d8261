"""The device a node trained on (fedgov/devices.py): signed with its reply, recorded per node, and a hostile value
rejected by name without ever raising. A reply that states none (a node of an earlier fedgov) is still accepted."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord, MetricRecord, RecordDict

from client.attestation import attest
from fedgov.devices import MAX_DEVICE_TEXT, device_kind, device_problem, device_text
from fedgov.models import build_model
from fedgov.protocol import GOVERNED_RECORDS
from governance.fingerprint import fingerprint_arrays
from governance.identity import IdentityError, NodeKey, NodeRegistry, reply_signing_payload
from server.overhead import Overhead
from server.replies import model_spec, split_replies
from server.reply_verifier import ReplyVerifier
from tests.server.node_reply import FLOWER_ID, NODE, RUN, reply_of

GPU = "cuda:0 (NVIDIA H200)"



def _signed(key: NodeKey, device: str | None) -> RecordDict:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(37, 30)), rng.integers(0, 2, size=37)
    content = RecordDict({"arrays": ArrayRecord(build_model("breast-cancer", seed=1).state_dict()),
                          "metrics": MetricRecord({"train-loss": 0.5, "local-loss": 0.6, "local-accuracy": 0.75,
                                                   "num-examples": 37})})
    attest(content, key, NODE, RUN, 1, fingerprint_arrays(x, y), device=device)
    return content


@pytest.fixture
def node():
    key = NodeKey.generate()
    registry = NodeRegistry()
    registry.register(NODE, key.public_bytes(), "team")
    verifier = ReplyVerifier(RUN, {FLOWER_ID: NODE}, registry, Overhead())
    return key, verifier, model_spec(ArrayRecord(build_model("breast-cancer").state_dict()))


def _judge(verifier: ReplyVerifier, spec: dict, content: RecordDict) -> str | None:
    valid, rejected = split_replies([reply_of(content)], spec, GOVERNED_RECORDS)
    if rejected:
        return rejected[0].reason
    return verifier.check(1, *valid[0])


@pytest.mark.parametrize("device", ["cpu", GPU, "cuda:3"])
def test_the_stated_device_is_signed_verified_and_kept_for_the_record(node, device):
    key, verifier, spec = node
    content = _signed(key, device)
    assert content["governance"]["device"] == device
    assert _judge(verifier, spec, content) is None
    assert verifier.take(FLOWER_ID)["device"] == device  # what round.reply records


def test_a_reply_that_states_no_device_is_accepted_and_recorded_without_one(node):
    key, verifier, spec = node
    content = _signed(key, None)
    assert "device" not in content["governance"]
    assert _judge(verifier, spec, content) is None
    assert "device" not in verifier.take(FLOWER_ID)


def test_the_signed_bytes_without_a_device_are_exactly_the_earlier_ones():
    args = (RUN, 1, "a" * 64, "b" * 64, "c" * 64)
    assert reply_signing_payload(*args) == reply_signing_payload(*args, None, None)
    assert b'"device":"cpu"' in reply_signing_payload(*args, device="cpu")
    with pytest.raises(IdentityError, match="device must be text"):
        reply_signing_payload(*args, device="x" * (MAX_DEVICE_TEXT + 1))


@pytest.mark.parametrize("claimed", ["cpu", GPU])
def test_a_device_changed_after_signing_fails_the_signature(node, claimed):
    key, verifier, spec = node
    content = _signed(key, "cuda:1 (Other GPU)")
    content["governance"]["device"] = claimed
    assert _judge(verifier, spec, content).startswith("bad-signature")


def test_a_device_added_to_a_statement_signed_without_one_fails_the_signature(node):
    key, verifier, spec = node
    content = _signed(key, None)
    content["governance"]["device"] = GPU
    assert _judge(verifier, spec, content).startswith("bad-signature")


@pytest.mark.parametrize("hostile", [
    "", "gpu", "cuda", "cuda:", "cuda:0 NVIDIA", "cuda:0 ()", "cuda:1234 (x)", "CPU", " cpu", "cpu\n",
    "cuda:0 (NVIDIA\x1b[31m H200)", "cuda:0 (Ñvidia)", "cuda:0 (" + "x" * 101 + ")", "x" * 10_000_000,
    b"cpu", 0, 1.5, True, ["cpu"], [b"cpu"],
])
def test_a_hostile_device_is_rejected_by_name_and_never_raises(node, hostile):
    key, verifier, spec = node
    content = _signed(key, "cpu")
    content["governance"]["device"] = hostile
    reason = _judge(verifier, spec, content)
    assert reason is not None and reason.startswith("bad device: ")
    assert len(reason) < 200  # a huge value is not echoed back into the record
    assert reason == device_problem(hostile)


def test_the_device_text_of_this_machine_is_one_the_server_accepts():
    import torch

    assert device_text(torch.device("cpu")) == "cpu"
    if torch.cuda.is_available():
        text = device_text(torch.device("cuda"))
        assert text.startswith("cuda:") and device_problem(text) is None


def test_device_kinds_are_what_the_gpu_check_counts():
    assert [device_kind(v) for v in ("cpu", GPU, None, "gpu", 7)] == ["cpu", "cuda", "not recorded",
                                                                     "not recorded", "not recorded"]
