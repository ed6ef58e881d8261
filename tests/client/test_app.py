"""The deployed ClientApp: a node is who its own config says, trains on its own checked data, and its
signed reply verifies on the server; anything wrong on its side is an error reply with the reason."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.app.message.message import make_message
from flwr.app.metadata import Metadata

from client.app import deployed_self, train_handler
from fedgov.datasets import load_split
from fedgov.local_data import schema_for, write_csv
from fedgov.models import build_model
from fedgov.protocol import GOVERNED_RECORDS
from fedgov.settings import RunSettings
from governance.errors import UsageError
from governance.identity import IdentityError, NodeKey, NodeRegistry
from server.overhead import Overhead
from server.replies import model_spec, split_replies
from server.reply_verifier import ReplyVerifier

RUN, FLOWER_ID = 77, 4242
POLICY = ('[policy]\npurposes = ["simulation"]\napp_hashes = []\nmax_rounds = 10\nmax_update_bytes = {max_bytes}\n'
          'min_dp_noise_multiplier = 0.0\n\n[data]\npath = "data.csv"\n\n')


def _site(tmp_path: Path, max_bytes: int = 10_000_000, rows: int = 60) -> Path:
    """A site file and its CSV (rows of the bundled breast-cancer set, under its own schema)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    pool, _ = load_split("breast-cancer", 42)
    data = type(pool)(pool.name, pool.x[:rows], pool.y[:rows], pool.num_classes)
    schema = schema_for("breast-cancer")
    write_csv(tmp_path / "data.csv", data, schema)
    features = "".join(f'"{f.name}" = "{f.type}"\n' for f in schema.features)
    labels = ", ".join(f'"{label}"' for label in schema.labels)
    (tmp_path / "policy.toml").write_text(POLICY.format(max_bytes=max_bytes) + f'[data.schema]\nlabel = "{schema.label}"\n'
                                          f"labels = [{labels}]\n\n[data.schema.features]\n{features}")
    return tmp_path / "policy.toml"


def _context(node_config: dict) -> Context:
    return Context(run_id=RUN, node_id=FLOWER_ID, node_config=node_config, state=RecordDict(),
                   run_config=RunSettings.from_run_config().to_run_config())


def _message(content: RecordDict, src: int, dst: int, reply_to: str = "") -> Message:
    metadata = Metadata(run_id=RUN, message_id=f"m{src}", src_node_id=src, dst_node_id=dst,
                        reply_to_message_id=reply_to, group_id="1", created_at=time.time(), ttl=3600,
                        message_type="train")
    return make_message(metadata, content)


def _instruction() -> tuple[Message, ArrayRecord]:
    model = ArrayRecord(build_model("breast-cancer", 42).state_dict())
    return _message(RecordDict({"arrays": model, "config": ConfigRecord({"server-round": 1})}), 1, FLOWER_ID), model


@pytest.fixture
def node(tmp_path: Path) -> tuple[NodeKey, dict]:
    key = NodeKey.load_or_create(tmp_path / "node" / "node.key")  # made on its own machine, beforehand
    return key, {"fedgov-node-id": "radiology", "fedgov-key": str(tmp_path / "node" / "node.key"),
                 "fedgov-site": str(_site(tmp_path))}


def test_a_deployed_node_without_its_fedgov_identity_refuses_to_train():
    with pytest.raises(UsageError, match="this node has no fedgov identity: start it with --node-config"):
        deployed_self(_context({}))


def test_a_deployed_node_never_makes_up_a_key(tmp_path):
    with pytest.raises(IdentityError, match="absent.key does not exist: set fedgov-key in --node-config"):
        deployed_self(_context({"fedgov-node-id": "radiology", "fedgov-key": str(tmp_path / "absent.key")}))
    assert not (tmp_path / "absent.key").exists()


def test_a_deployed_nodes_signed_reply_on_its_own_data_verifies_on_the_server(node):
    key, config = node
    instruction, model = _instruction()
    reply = train_handler(instruction, _context(config))
    assert not reply.has_error(), reply.error
    reply = _message(reply.content, FLOWER_ID, 1, reply_to="m1")
    registry = NodeRegistry()
    registry.register("radiology", key.public_bytes(), "radiology")
    valid, rejected = split_replies([reply], model_spec(model), GOVERNED_RECORDS)
    assert rejected == [] and len(valid) == 1
    assert ReplyVerifier(str(RUN), {FLOWER_ID: "radiology"}, registry, Overhead()).check(1, *valid[0]) is None
    assert reply.content["metrics"]["num-examples"] == 48  # 80 % of the site's 60 rows: its own data


def test_a_deployed_node_signs_the_received_models_loss_and_accuracy_on_its_own_test_split(node, tmp_path):
    """Measured before training: the instruction's model, on the rows the node never trains on."""
    from client.app import site_partition
    from client.site import Site
    from fedgov.training import evaluate
    import torch

    key, config = node
    instruction, model = _instruction()
    metrics = train_handler(instruction, _context(config)).content["metrics"]
    partition = site_partition(Site.load(Path(config["fedgov-site"])), RunSettings.from_run_config())
    received = build_model("breast-cancer", 0)
    received.load_state_dict(model.to_torch_state_dict())
    loss, accuracy = evaluate(received, partition.test, torch.device("cpu"))
    assert len(partition.test) == 12 and (metrics["local-loss"], metrics["local-accuracy"]) == (loss, accuracy)
    assert metrics["local-loss"] >= 0 and 0 <= metrics["local-accuracy"] <= 1


def test_a_node_too_small_for_a_test_split_evaluates_on_its_train_split():
    import torch

    from client.app import local_evaluation
    from fedgov.partition import split_local

    pool, _ = load_split("breast-cancer", 42)
    partition = split_local(type(pool)(pool.name, pool.x[:1], pool.y[:1], pool.num_classes), 42)
    assert len(partition.test) == 0 and len(partition.train) == 1
    found = local_evaluation(build_model("breast-cancer", 42), partition, torch.device("cpu"))
    assert set(found) == {"local-loss", "local-accuracy"} and found["local-accuracy"] in (0.0, 1.0)
    assert found["local-loss"] > 0


def test_a_malformed_data_file_is_an_error_reply_naming_it(node, tmp_path):
    _, config = node
    (tmp_path / "data.csv").write_text("mean_radius,diagnosis\n1.0,benign\n")
    reply = train_handler(_instruction()[0], _context(config))
    assert reply.has_error()
    assert reply.error.reason.startswith("data.csv: the header lacks the schema's column")


def test_an_update_over_the_sites_limit_is_refused_not_sent(node, tmp_path):
    _, config = node
    config["fedgov-site"] = str(_site(tmp_path / "small", max_bytes=100))
    reply = train_handler(_instruction()[0], _context(config))
    assert reply.has_error()
    assert reply.error.reason.startswith("site policy: the update is ") and "maximum of 100" in reply.error.reason


def test_data_that_does_not_fit_the_runs_model_is_refused(node, tmp_path):
    _, config = node
    site = tmp_path / "digits-site"
    site.mkdir()
    pool, _ = load_split("digits", 42)
    schema = schema_for("digits")
    write_csv(site / "data.csv", type(pool)(pool.name, pool.x[:20], pool.y[:20], 10), schema)
    features = "".join(f'"{f.name}" = "{f.type}"\n' for f in schema.features)
    (site / "policy.toml").write_text(POLICY.format(max_bytes=10**8) + f'[data.schema]\nlabel = "{schema.label}"\n'
                                      f'labels = {list(schema.labels)!r}\n\n[data.schema.features]\n{features}'.replace("'", '"'))
    config["fedgov-site"] = str(site / "policy.toml")
    reply = train_handler(_instruction()[0], _context(config))
    assert reply.error.reason == ("data.csv: examples of shape (64,) with 10 labels; the run's model (breast-cancer) "
                                  "takes shape (30,) with 2 labels")


def test_a_node_without_a_site_file_says_how_to_give_one(node):
    _, config = node
    del config["fedgov-site"]
    reply = train_handler(_instruction()[0], _context(config))
    assert reply.error.reason.startswith("this node has no site file: start it with --node-config 'fedgov-site=PATH'")
