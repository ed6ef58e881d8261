"""fedgov's ClientApp: trains on the node's own partition and replies weights and metrics.

Raw data never goes into a reply: it holds the updated weights, a few scalar metrics and
the node's signed statement (digests and counts only). The node's id and key come from
its own config (`--node-config 'fedgov-node-id=... fedgov-key=PATH'`), and the key must
already exist: a node never signs with a key it has just made up. The simulation harness
builds its simulated nodes from the same steps (`simulations/apps.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from client.attestation import attest
from fedgov.models import build_model
from fedgov.partition import Partition, load_partition
from fedgov.protocol import ARRAYS_KEY, METRICS_KEY, NUM_EXAMPLES_KEY
from fedgov.settings import RunSettings
from fedgov.training import evaluate, resolve_device, train
from governance.errors import UsageError
from governance.fingerprint import fingerprint_arrays
from governance.identity import NodeKey

app = ClientApp()


@dataclass(frozen=True)
class NodeSelf:
    """Who this node is: its pseudonymous id and the key it signs with."""

    node_id: str
    key: NodeKey


def node_partition(settings: RunSettings, context: Context) -> Partition:
    """This node's own rows (its partition of the bundled dataset)."""
    training = settings.training
    return load_partition(training.dataset, int(context.node_config["partition-id"]),
                          int(context.node_config["num-partitions"]), training.partition, training.alpha,
                          training.seed)


def deployed_self(context: Context) -> NodeSelf:
    """The node's id and key from its own config; one clear line when they are missing."""
    config = context.node_config
    if "fedgov-node-id" not in config:
        raise UsageError("this node has no fedgov identity: start it with --node-config "
                         "'fedgov-node-id=ID fedgov-key=PATH'")
    return NodeSelf(str(config["fedgov-node-id"]), NodeKey.load(Path(str(config.get("fedgov-key", "")))))


def server_round_of(msg: Message) -> int:
    """The round an instruction belongs to, as the strategy sent it."""
    return int(msg.content["config"].get("server-round", 0))


def train_reply(msg: Message, settings: RunSettings, me: NodeSelf, partition: Partition,
                before_signing: Callable[[RecordDict], None] | None = None) -> RecordDict:
    """Train the received global model on `partition`, then sign the reply's content.

    `before_signing` lets the simulation harness change the content the node signs (its
    rehearsed faults); a deployed node passes nothing.
    """
    training = settings.training
    config = msg.content["config"]
    server_round = server_round_of(msg)
    model = build_model(training.dataset, training.seed)
    model.load_state_dict(msg.content[ARRAYS_KEY].to_torch_state_dict())
    loss = train(
        model,
        partition.train,
        epochs=int(config.get("local-epochs", training.local_epochs)),
        batch_size=int(config.get("batch-size", training.batch_size)),
        lr=float(config.get("lr", training.lr)),
        device=resolve_device(training.device),
        seed=training.seed + partition.partition_id * 1000 + server_round,
        proximal_mu=float(config.get("proximal-mu", 0.0)),
    )
    content = RecordDict({
        ARRAYS_KEY: ArrayRecord(model.state_dict()),
        METRICS_KEY: MetricRecord({"train-loss": loss, NUM_EXAMPLES_KEY: len(partition.train)}),
    })
    if before_signing is not None:
        before_signing(content)
    attest(content, me.key, me.node_id, str(msg.metadata.run_id), server_round,
           fingerprint_arrays(partition.train.x, partition.train.y))
    return content


@app.train()
def train_handler(msg: Message, context: Context) -> Message:
    """Train the received global model on this node's partition, then sign the reply."""
    settings = RunSettings.from_run_config(context.run_config)
    content = train_reply(msg, settings, deployed_self(context), node_partition(settings, context))
    return Message(content, reply_to=msg)


@app.evaluate()
def evaluate_handler(msg: Message, context: Context) -> Message:
    """Evaluate the received model on this node's local test split."""
    settings = RunSettings.from_run_config(context.run_config)
    training = settings.training
    partition = node_partition(settings, context)
    model = build_model(training.dataset, training.seed)
    model.load_state_dict(msg.content[ARRAYS_KEY].to_torch_state_dict())
    loss, accuracy = evaluate(model, partition.test, resolve_device(training.device))
    metrics = MetricRecord({"eval-loss": loss, "eval-acc": accuracy, NUM_EXAMPLES_KEY: max(len(partition.test), 1)})
    return Message(RecordDict({METRICS_KEY: metrics}), reply_to=msg)
