"""Client-side clipping on a deployed node: Flower's fixedclipping_mod clips the update *before* the node
signs it, so the signature covers exactly what is sent, and the coordinator checks the promise."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.app.message.message import make_message
from flwr.app.metadata import Metadata
from flwr.serverapp.strategy import FedAvg
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from client.app import train_handler
from fedgov.datasets import load_split
from fedgov.local_data import schema_for, write_csv
from fedgov.models import build_model
from fedgov.privacy import DP_WEIGHT_KEY, ReplyCalibrated, wrap_dp
from fedgov.protocol import GOVERNED_RECORDS
from fedgov.settings import RunSettings
from governance.identity import NodeKey, NodeRegistry
from server.overhead import Overhead
from server.replies import model_spec, split_replies
from server.reply_verifier import ReplyVerifier

RUN, FLOWER_ID, CLIP = 77, 4242, 0.05  # a clipping norm far below what one round of training moves
POLICY = ('[policy]\npurposes = ["simulation"]\napp_hashes = []\nmax_rounds = 10\nmax_update_bytes = 10000000\n'
          'min_dp_noise_multiplier = 0.0\n\n[data]\npath = "data.csv"\n\n')


@pytest.fixture
def node(tmp_path: Path) -> tuple[NodeKey, dict]:
    pool, _ = load_split("breast-cancer", 42)
    schema = schema_for("breast-cancer")
    write_csv(tmp_path / "data.csv", type(pool)(pool.name, pool.x[:60], pool.y[:60], pool.num_classes), schema)
    features = "".join(f'"{f.name}" = "{f.type}"\n' for f in schema.features)
    labels = ", ".join(f'"{label}"' for label in schema.labels)
    (tmp_path / "policy.toml").write_text(POLICY + f'[data.schema]\nlabel = "{schema.label}"\nlabels = [{labels}]\n\n'
                                          f"[data.schema.features]\n{features}")
    key = NodeKey.load_or_create(tmp_path / "node.key")
    return key, {"fedgov-node-id": "radiology", "fedgov-key": str(tmp_path / "node.key"),
                 "fedgov-site": str(tmp_path / "policy.toml")}


def _context(node_config: dict, dp: str) -> Context:
    run_config = RunSettings.from_run_config({"dp": dp, "dp-clipping-norm": CLIP}).to_run_config()
    return Context(run_id=RUN, node_id=FLOWER_ID, node_config=node_config, state=RecordDict(), run_config=run_config)


def _message(content: RecordDict, src: int, dst: int, reply_to: str = "") -> Message:
    metadata = Metadata(run_id=RUN, message_id=f"m{src}", src_node_id=src, dst_node_id=dst,
                        reply_to_message_id=reply_to, group_id="1", created_at=time.time(), ttl=3600,
                        message_type="train")
    return make_message(metadata, content)


def _instruction(clip: float | None) -> tuple[Message, ArrayRecord]:
    model = ArrayRecord(build_model("breast-cancer", 42).state_dict())
    config = ConfigRecord({"server-round": 1, **({KEY_CLIPPING_NORM: clip} if clip is not None else {})})
    return _message(RecordDict({"arrays": model, "config": config}), 1, FLOWER_ID), model


def _norm(reply: Message, model: ArrayRecord) -> float:
    sent = dict(model.items())
    return float(np.sqrt(sum(np.sum((a.numpy().astype(np.float64) - sent[k].numpy()) ** 2)
                             for k, a in reply.content["arrays"].items())))


def _coordinator(key: NodeKey, model: ArrayRecord, dp: str) -> tuple[ReplyVerifier, ReplyCalibrated, dict]:
    registry = NodeRegistry()
    registry.register("radiology", key.public_bytes(), "radiology")
    settings = RunSettings.from_run_config({"dp": dp, "dp-clipping-norm": CLIP})
    strategy = wrap_dp(FedAvg(weighted_by_key=DP_WEIGHT_KEY), settings.privacy)
    assert isinstance(strategy, ReplyCalibrated)
    strategy.current_arrays = model  # what configure_train remembers of the round's model
    return ReplyVerifier(str(RUN), {FLOWER_ID: "radiology"}, registry, Overhead()), strategy, model_spec(model)


def test_the_node_signs_the_clipped_update_it_sends_and_the_coordinator_accepts_it(node):
    key, config = node
    instruction, model = _instruction(CLIP)
    reply = train_handler(instruction, _context(config, "client-fixed"))
    assert not reply.has_error(), reply.error
    reply = _message(reply.content, FLOWER_ID, 1, reply_to="m1")
    assert _norm(reply, model) <= CLIP * (1 + 1e-5)
    assert reply.content["metrics"][DP_WEIGHT_KEY] == 1  # signed with the metrics: an unweighted mean
    verifier, strategy, spec = _coordinator(key, model, "client-fixed")
    [(checked, arrays)], rejected = split_replies([reply], spec, GOVERNED_RECORDS)
    assert rejected == []
    assert verifier.check(1, checked, arrays) is None  # the signature covers the clipped arrays
    assert strategy.check_clipped(1, checked, arrays) is None and strategy.check_weight(1, checked, arrays) is None


def test_an_instruction_without_a_clipping_norm_is_refused_with_the_mods_reason(node):
    _, config = node
    instruction, _ = _instruction(None)
    reply = train_handler(instruction, _context(config, "client-fixed"))
    assert reply.has_error() and reply.error.reason.startswith("client-side clipping refused:")


def test_a_signed_but_unclipped_update_is_rejected_by_a_client_fixed_coordinator(node):
    key, config = node
    instruction, model = _instruction(CLIP)
    reply = _message(train_handler(instruction, _context(config, "server-fixed")).content, FLOWER_ID, 1, "m1")
    assert _norm(reply, model) > CLIP  # the node did not clip: server-side clipping was its run's mode
    verifier, strategy, spec = _coordinator(key, model, "client-fixed")
    [(checked, arrays)], _ = split_replies([reply], spec, GOVERNED_RECORDS)
    assert verifier.check(1, checked, arrays) is None  # genuinely signed...
    assert "exceeds the clipping norm 0.05 (client-side clipping not applied)" in strategy.check_clipped(1, checked,
                                                                                                        arrays)


@pytest.mark.parametrize("weight", [2, 0.5, None, [1]])
def test_a_reply_claiming_another_weight_than_1_is_rejected_by_name(node, weight):
    key, config = node
    instruction, model = _instruction(CLIP)
    content = train_handler(instruction, _context(config, "client-fixed")).content
    if weight is None:
        del content["metrics"][DP_WEIGHT_KEY]
    else:
        content["metrics"][DP_WEIGHT_KEY] = weight
    _, strategy, spec = _coordinator(key, model, "client-fixed")
    [(checked, arrays)], _ = split_replies([_message(content, FLOWER_ID, 1, "m1")], spec, GOVERNED_RECORDS)
    assert strategy.check_weight(1, checked, arrays).startswith("dp-weight must be 1 under differential privacy")
