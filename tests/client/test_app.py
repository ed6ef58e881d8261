"""The deployed ClientApp: a node is who its own config says, and its signed reply verifies on the server."""

from __future__ import annotations

import time

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.app.message.message import make_message
from flwr.app.metadata import Metadata

from client.app import deployed_self, node_partition, train_reply
from fedgov.models import build_model
from fedgov.protocol import GOVERNED_RECORDS
from fedgov.settings import RunSettings
from governance.errors import UsageError
from governance.identity import IdentityError, NodeKey, NodeRegistry
from server.overhead import Overhead
from server.replies import model_spec, split_replies
from server.reply_verifier import ReplyVerifier

RUN, FLOWER_ID = 77, 4242


def _context(node_config: dict) -> Context:
    return Context(run_id=RUN, node_id=FLOWER_ID, node_config={"partition-id": 1, "num-partitions": 4, **node_config},
                   state=RecordDict(), run_config=RunSettings.from_run_config().to_run_config())


def _message(content: RecordDict, src: int, dst: int, reply_to: str = "") -> Message:
    metadata = Metadata(run_id=RUN, message_id=f"m{src}", src_node_id=src, dst_node_id=dst,
                        reply_to_message_id=reply_to, group_id="1", created_at=time.time(), ttl=3600,
                        message_type="train")
    return make_message(metadata, content)


def test_a_deployed_node_without_its_fedgov_identity_refuses_to_train():
    with pytest.raises(UsageError, match="this node has no fedgov identity: start it with --node-config"):
        deployed_self(_context({}))


def test_a_deployed_node_never_makes_up_a_key(tmp_path):
    with pytest.raises(IdentityError, match="absent.key does not exist: set fedgov-key in --node-config"):
        deployed_self(_context({"fedgov-node-id": "radiology", "fedgov-key": str(tmp_path / "absent.key")}))
    assert not (tmp_path / "absent.key").exists()


def test_a_deployed_nodes_signed_reply_verifies_on_the_server(tmp_path):
    key_path = tmp_path / "node.key"
    key = NodeKey.load_or_create(key_path)  # the node made its key on its own machine, beforehand
    context = _context({"fedgov-node-id": "radiology", "fedgov-key": str(key_path)})
    settings = RunSettings.from_run_config(context.run_config)
    model = ArrayRecord(build_model("breast-cancer", 42).state_dict())
    instruction = _message(RecordDict({"arrays": model, "config": ConfigRecord({"server-round": 1})}), 1, FLOWER_ID)
    content = train_reply(instruction, settings, deployed_self(context), node_partition(settings, context))
    reply = _message(content, FLOWER_ID, 1, reply_to="m1")

    registry = NodeRegistry()
    registry.register("radiology", key.public_bytes(), "radiology")
    valid, rejected = split_replies([reply], model_spec(model), GOVERNED_RECORDS)
    assert rejected == [] and len(valid) == 1
    verifier = ReplyVerifier(str(RUN), {FLOWER_ID: "radiology"}, registry, Overhead())
    assert verifier.check(1, *valid[0]) is None
