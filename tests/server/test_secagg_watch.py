"""What the coordinator sees of a SecAgg+ round: stage answers, and each masked vector's signed statement.

Replies are built as `secaggplus_mod` builds them (Flower's FitRes layout plus the masked vector)
and signed by the node's real `signing_mod`; a reply that fails its check reaches the workflow as
an error, which SecAgg+ handles as a dropout.
"""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Error, Message, RecordDict
from flwr.common import Code, FitRes, Parameters, Status
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.compat.common.parameter import ndarray_to_bytes
from flwr.compat.common.recorddict_compat import fitres_to_recorddict
from flwr.supercore.task_identity import TaskIdentity

from client.secagg import signing_mod
from fedgov.models import build_model
from fedgov.partition import load_partition
from fedgov.protocol import GOVERNANCE_KEY
from governance.identity import NodeKey, NodeRegistry
from server.secagg_watch import MaskedReplyChecker, StageWatch

FLOWER_IDS = (101, 102, 103)
BINDING = {fid: f"sim-000{i}" for i, fid in enumerate(FLOWER_IDS)}
KEYS = {node: NodeKey.generate() for node in BINDING.values()}
SHAPES = [tuple(v.shape) for v in build_model("breast-cancer", 42).state_dict().values()]
PARTITIONS = {fid: load_partition("breast-cancer", i, 3, "iid", 0.5, 42) for i, fid in enumerate(FLOWER_IDS)}


@pytest.fixture(autouse=True)
def server_identity(monkeypatch):
    for attribute, value in (("_run_id", 7), ("_task_id", 11), ("_node_id", SUPERLINK_NODE_ID)):
        monkeypatch.setattr(TaskIdentity, attribute, value)


def registry() -> NodeRegistry:
    reg = NodeRegistry()
    for node, key in KEYS.items():
        reg.register(node, key.public_bytes(), f"team-{node[-1]}")
    return reg


def instruction(fid: int, stage: str) -> Message:
    msg = Message(RecordDict({RECORD_KEY_CONFIGS: ConfigRecord({Key.STAGE: stage})}), dst_node_id=fid,
                  message_type="train", group_id="1")
    msg.metadata.__dict__["_message_id"] = f"m-{fid}-{stage}"  # as the grid does when it pushes it
    return msg


def masked_reply(msg: Message, *, num_examples: int | None = None, metrics: dict | None = None,
                 shapes: list[tuple[int, ...]] = SHAPES) -> Message:
    """The reply `secaggplus_mod` hands back in the masked-vectors stage: FitRes layout, arrays cleared."""
    fid = msg.metadata.dst_node_id
    n = len(PARTITIONS[fid].train) if num_examples is None else num_examples
    content = fitres_to_recorddict(FitRes(Status(Code.OK, ""), Parameters([], ""), n, metrics or
                                          {"train-loss": 0.3, "local-loss": 0.5, "local-accuracy": 0.8}), True)
    masked = [ndarray_to_bytes(np.array([12345], dtype=np.int64))] + \
             [ndarray_to_bytes(np.arange(int(np.prod(s)), dtype=np.int64).reshape(s)) for s in shapes]
    content.config_records[RECORD_KEY_CONFIGS] = ConfigRecord({Key.MASKED_PARAMETERS: masked})
    return Message(content, reply_to=msg)


def signed(msg: Message, reply: Message, key: NodeKey | None = None, node: str | None = None,
           device: str | None = None) -> Message:
    """Through the node's own signing mod, as it runs outside secaggplus_mod."""
    fid = msg.metadata.dst_node_id
    mod = signing_mod(node or BINDING[fid], key or KEYS[BINDING[fid]], PARTITIONS[fid], device)
    return mod(msg, Context(run_id=7, node_id=fid, node_config={}, state=RecordDict(), run_config={}),
               lambda m, c: reply)


class AnsweringGrid:
    """Stands in for Flower's grid: each node answers with what `answer` gives (None: no reply)."""

    def __init__(self, answer) -> None:
        self.answer = answer

    def send_and_receive(self, messages, *, timeout=None):
        return [r for r in (self.answer(m) for m in messages) if r is not None]


def watch(answer) -> StageWatch:
    return StageWatch(AnsweringGrid(answer), MaskedReplyChecker("7", BINDING, registry(), SHAPES))


def collect(w: StageWatch) -> list[Message]:
    return list(w.send_and_receive([instruction(fid, Stage.COLLECT_MASKED_VECTORS) for fid in FLOWER_IDS]))


def test_honest_masked_replies_pass_and_their_signed_statements_are_kept():
    w = watch(lambda m: signed(m, masked_reply(m)))
    replies = collect(w)
    assert not any(r.has_error() for r in replies)
    view = w.rounds[1]
    assert view.stages[Stage.COLLECT_MASKED_VECTORS] == list(FLOWER_IDS) and view.dropped == {}
    statement = view.statements[101]
    assert statement["num_examples"] == statement["dataset_fingerprint"]["rows"] == len(PARTITIONS[101].train)
    assert len(statement["masked_update_digest"]) == 64 and "update_digest" not in statement


def test_the_device_a_node_signed_for_is_kept_with_its_statement():
    w = watch(lambda m: signed(m, masked_reply(m), device="cuda:0 (NVIDIA H200)" if m.metadata.dst_node_id == 101
                               else "cpu"))
    collect(w)
    assert [w.rounds[1].statements[fid].get("device") for fid in FLOWER_IDS] == ["cuda:0 (NVIDIA H200)", "cpu",
                                                                                 "cpu"]


def _device_after_signing(m, device):
    reply = signed(m, masked_reply(m), device="cpu")
    reply.content.config_records[GOVERNANCE_KEY]["device"] = device
    return reply


def _forged(m):
    return signed(m, masked_reply(m), key=NodeKey.generate())


def _tampered_after_signing(m):
    reply = signed(m, masked_reply(m))
    masked = reply.content.config_records[RECORD_KEY_CONFIGS][Key.MASKED_PARAMETERS]
    heavier = ndarray_to_bytes(np.array([99999], dtype=np.int64))  # the weight, changed after signing
    reply.content.config_records[RECORD_KEY_CONFIGS][Key.MASKED_PARAMETERS] = [heavier, *masked[1:]]
    return reply


def _extra_record(m):
    reply = signed(m, masked_reply(m))
    reply.content.config_records["smuggled"] = ConfigRecord({"rows": "1,2,3"})
    return reply


def _unsigned(m):
    return masked_reply(m)


def _fingerprint_inflated(m):
    return signed(m, masked_reply(m, num_examples=900))


def _deep_fingerprint(m):
    reply = signed(m, masked_reply(m))
    reply.content.config_records[GOVERNANCE_KEY]["fingerprint"] = "[" * 100_000
    return reply


def _nan_after_signing(m):
    reply = signed(m, masked_reply(m))
    reply.content.config_records["fitres.metrics"]["train-loss"] = float("nan")
    return reply


HOSTILE = {
    "forged": (_forged, "signature"),
    "tampered after signing": (_tampered_after_signing, "signature"),
    "extra record": (_extra_record, "unexpected records in a masked reply: ['smuggled']"),
    "unsigned": (_unsigned, "unsigned: the masked reply carries no governance statement"),
    "signed as another node": (lambda m: signed(m, masked_reply(m), node="sim-0002"), "node id mismatch"),
    "wrong shapes": (lambda m: signed(m, masked_reply(m, shapes=[(3,)] * len(SHAPES))), "shapes or integer types"),
    "nan metric after signing": (_nan_after_signing, "bad fit metrics"),
    "extra metric": (lambda m: signed(m, masked_reply(m, metrics={"train-loss": 0.3, "local-loss": 0.5,
                                                                   "local-accuracy": 0.8, "rows": 1.0})),
                     "bad fit metrics"),
    "weight not its rows": (_fingerprint_inflated, "disagrees with the"),
    "weight above SecAgg+'s max": (lambda m: signed(m, masked_reply(m, num_examples=5000)), "outside (0, 1000]"),
    "deep fingerprint": (_deep_fingerprint, "fingerprint is not text of bounded size"),
    "device claimed after signing": (lambda m: _device_after_signing(m, "cuda:0 (NVIDIA H200)"), "signature"),
    "hostile device": (lambda m: _device_after_signing(m, "cuda:0 (\x1b[2J)" + "x" * 5000), "bad device: "),
    "device of another type": (lambda m: _device_after_signing(m, [b"cuda"]), "bad device: "),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_bad_masked_reply_becomes_a_named_dropout_and_the_others_go_on(case):
    make, reason = HOSTILE[case]
    w = watch(lambda m: make(m) if m.metadata.dst_node_id == 102 else signed(m, masked_reply(m)))
    replies = {r.metadata.src_node_id: r for r in collect(w)}
    assert replies[102].has_error() and "rejected" in replies[102].error.reason  # the workflow drops it
    assert not replies[101].has_error() and not replies[103].has_error()
    view = w.rounds[1]
    assert reason in view.dropped[102]
    assert view.stages[Stage.COLLECT_MASKED_VECTORS] == [101, 103] and 102 not in view.statements


def test_a_node_that_fails_or_does_not_answer_a_stage_is_named_a_dropout_at_that_stage():
    def answer(m):
        if m.metadata.dst_node_id == 101:
            return Message(Error(code=0, reason="Node unavailable"), reply_to=m)
        if m.metadata.dst_node_id == 102:
            return None
        return Message(RecordDict({RECORD_KEY_CONFIGS: ConfigRecord({Key.PUBLIC_KEY_1: b"a", Key.PUBLIC_KEY_2: b"b"})}),
                       reply_to=m)

    w = watch(answer)
    w.send_and_receive([instruction(fid, Stage.SETUP) for fid in FLOWER_IDS])
    view = w.rounds[1]
    assert view.stages[Stage.SETUP] == [103]
    assert view.dropped == {101: "dropout at SecAgg+ stage setup: Node unavailable",
                            102: "dropout at SecAgg+ stage setup: no reply within the time-out"}


def test_messages_outside_the_protocol_pass_untouched():
    w = watch(lambda m: Message(RecordDict(), reply_to=m))
    msg = Message(RecordDict({"config": ConfigRecord({"x": 1})}), dst_node_id=101, message_type="train", group_id="0")
    assert len(list(w.send_and_receive([msg]))) == 1 and dict(w.rounds) == {}


def test_a_bad_masked_reply_that_names_no_instruction_is_never_summed():
    """Attack (issue 12, low): a forged masked vector whose reply_to names no instruction of this stage went to the
    workflow untouched, its node counted as answering, because only a reply with a known instruction could be
    turned into an error. Now it is left out (named a dropout) whichever instruction it claims to answer."""
    def answer(m):
        if m.metadata.dst_node_id != 102:
            return signed(m, masked_reply(m))
        reply = _forged(m)
        reply.metadata.__dict__["_reply_to_message_id"] = "no-such-instruction"
        return reply

    w = watch(answer)
    replies = collect(w)
    assert all(not r.has_error() for r in replies) and {r.metadata.src_node_id for r in replies} == {101, 103}
    view = w.rounds[1]
    assert "signature" in view.dropped[102] and 102 not in view.statements
    assert view.stages[Stage.COLLECT_MASKED_VECTORS] == [101, 103]


def _stage_reply(m: Message, values: dict) -> Message:
    return Message(RecordDict({RECORD_KEY_CONFIGS: ConfigRecord(values)}), reply_to=m)


GOOD_SHARE = bytes(4 + 16 * 3)
STAGE_CASES = {  # stage -> (an honest reply's values for node fid, a hostile one's)
    "setup, no keys": (Stage.SETUP, lambda fid: {Key.PUBLIC_KEY_1: b"a", Key.PUBLIC_KEY_2: b"b"}, {}),
    "share keys, lists of different lengths": (
        Stage.SHARE_KEYS, lambda fid: {Key.DESTINATION_LIST: [101, 102, 103], Key.CIPHERTEXT_LIST: [b"x"] * 3},
        {Key.DESTINATION_LIST: [101, 103], Key.CIPHERTEXT_LIST: [b"x"] * 3}),
    "unmask, a share for a node outside the round": (
        Stage.UNMASK, lambda fid: {Key.NODE_ID_LIST: [101, 102, 103], Key.SHARE_LIST: [GOOD_SHARE] * 3},
        {Key.NODE_ID_LIST: [101, 999, 103], Key.SHARE_LIST: [GOOD_SHARE] * 3}),
    "unmask, a share of another length": (
        Stage.UNMASK, lambda fid: {Key.NODE_ID_LIST: [101, 102, 103], Key.SHARE_LIST: [GOOD_SHARE] * 3},
        {Key.NODE_ID_LIST: [101, 102, 103], Key.SHARE_LIST: [GOOD_SHARE, bytes(4 + 16), GOOD_SHARE]}),
    "unmask, shares not bytes": (
        Stage.UNMASK, lambda fid: {Key.NODE_ID_LIST: [101, 102, 103], Key.SHARE_LIST: [GOOD_SHARE] * 3},
        {Key.NODE_ID_LIST: [101, 102, 103], Key.SHARE_LIST: [1, 2, 3]}),
}


@pytest.mark.parametrize("case", sorted(STAGE_CASES))
def test_a_malformed_reply_at_another_stage_is_a_named_dropout_not_the_end_of_the_run(case):
    """Attack (issue 12, high): Flower's workflow indexes and zips the setup, share-keys and unmask replies as they
    come (`res_dict[Key.DESTINATION_LIST]`, `zip(..., strict=True)`, `collected_shares_dict[owner]`), and the watch
    checked only the masked vectors: one selected node's malformed reply raised out of the workflow and ended the
    whole run. Now it reaches the workflow as an error: a dropout, named."""
    stage, honest, hostile = STAGE_CASES[case]
    w = watch(lambda m: _stage_reply(m, hostile if m.metadata.dst_node_id == 102 else honest(m.metadata.dst_node_id)))
    if stage != Stage.SETUP:
        w.send_and_receive([instruction(fid, Stage.SETUP) for fid in FLOWER_IDS])  # the round's nodes
    replies = {r.metadata.src_node_id: r for r in w.send_and_receive([instruction(fid, stage) for fid in FLOWER_IDS])}
    assert replies[102].has_error() and "rejected: malformed SecAgg+" in replies[102].error.reason
    assert not replies[101].has_error() and not replies[103].has_error()
    assert w.rounds[1].stages[stage] == [101, 103] and "malformed SecAgg+" in w.rounds[1].dropped[102]
