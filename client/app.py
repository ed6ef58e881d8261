"""fedgov's ClientApp: trains on the node's own partition and replies weights and metrics.

Raw data never goes into a reply: it holds the updated weights, a few scalar metrics and
the node's signed statement (digests and counts only).
"""

from __future__ import annotations

import json
from pathlib import Path

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from client.attestation import attest
from fedgov.models import build_model
from fedgov.settings import RunSettings
from fedgov.training import evaluate, resolve_device, train
from governance.fingerprint import fingerprint_arrays
from governance.identity import NodeKey
from simulations.faults import SIGNATURE_FAULTS, apply_fault, parse_faults
from simulations.partition import Partition, load_partition
from simulations.scenarios import drifted, parse_node_rounds, sim_key_path, sim_node_id

app = ClientApp()


def _node_partition(settings: RunSettings, context: Context) -> Partition:
    return load_partition(
        settings.dataset,
        int(context.node_config["partition-id"]),
        int(context.node_config["num-partitions"]),
        settings.partition,
        settings.alpha,
        settings.seed,
    )


def node_identity(settings: RunSettings, context: Context) -> tuple[str, Path]:
    """This node's pseudonymous id and key file: from its own node config when deployed
    (`--node-config 'fedgov-node-id=... fedgov-key=...'`), else its simulated identity."""
    config = context.node_config
    if "fedgov-node-id" in config:
        return str(config["fedgov-node-id"]), Path(str(config["fedgov-key"]))
    node_id = sim_node_id(int(config["partition-id"]))
    return node_id, sim_key_path(Path(settings.sim_root), node_id)


def _trace(settings: RunSettings, partition: Partition, server_round: int, rows: int) -> None:
    """Node-side record of what this node trained on (row indices into its own pool)."""
    if not settings.trace_dir:
        return
    path = Path(settings.trace_dir) / f"node-{partition.partition_id}-round-{server_round}.json"
    path.write_text(json.dumps({
        "partition_id": partition.partition_id,
        "round": server_round,
        "pool_indices": partition.indices.tolist(),
        "train_rows": rows,
    }))


@app.train()
def train_handler(msg: Message, context: Context) -> Message:
    """Train the received global model on this node's partition, then sign the reply."""
    settings = RunSettings.from_run_config(context.run_config)
    node_id, key_path = node_identity(settings, context)
    config = msg.content["config"]
    server_round = int(config.get("server-round", 0))
    partition = drifted(_node_partition(settings, context), server_round,
                        parse_node_rounds(settings.drift, "drift"), node_id)
    device = resolve_device(settings.device)
    model = build_model(settings.dataset, settings.seed)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    loss = train(
        model,
        partition.train,
        epochs=int(config.get("local-epochs", settings.local_epochs)),
        batch_size=int(config.get("batch-size", settings.batch_size)),
        lr=float(config.get("lr", settings.lr)),
        device=device,
        seed=settings.seed + partition.partition_id * 1000 + server_round,
        proximal_mu=float(config.get("proximal-mu", 0.0)),
    )
    _trace(settings, partition, server_round, len(partition.train))
    content = RecordDict({
        "arrays": ArrayRecord(model.state_dict()),
        "metrics": MetricRecord({"train-loss": loss, "num-examples": len(partition.train)}),
    })
    fault = parse_faults(settings.faults).get(partition.partition_id)
    if fault and fault not in SIGNATURE_FAULTS:
        apply_fault(fault, content)
    attest(content, NodeKey.load_or_create(key_path), node_id, str(msg.metadata.run_id), server_round,
           fingerprint_arrays(partition.train.x, partition.train.y))
    if fault in SIGNATURE_FAULTS:
        apply_fault(fault, content)
    return Message(content, reply_to=msg)


@app.evaluate()
def evaluate_handler(msg: Message, context: Context) -> Message:
    """Evaluate the received model on this node's local test split."""
    settings = RunSettings.from_run_config(context.run_config)
    partition = _node_partition(settings, context)
    model = build_model(settings.dataset, settings.seed)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    loss, accuracy = evaluate(model, partition.test, resolve_device(settings.device))
    metrics = MetricRecord({"eval-loss": loss, "eval-acc": accuracy, "num-examples": max(len(partition.test), 1)})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)
