"""fedgov's ClientApp: trains on the node's own partition and replies weights and metrics.

Raw data never goes into a reply: it holds the updated weights, a few scalar metrics and
the node's signed statement (digests and counts only).
"""

from __future__ import annotations

import json
from dataclasses import replace
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
from fedgov.partition import Partition, load_partition
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


def node_identity(settings: RunSettings, context: Context) -> tuple[str, NodeKey, bool]:
    """This node's pseudonymous id, its key, and whether it is simulated.

    Deployed, both come from the node's own config (`--node-config 'fedgov-node-id=...
    fedgov-key=PATH'`) and the key must already exist: a node never signs with a key it
    has just made up. Simulated, they follow from the partition id.
    """
    config = context.node_config
    if "fedgov-node-id" in config:
        return str(config["fedgov-node-id"]), NodeKey.load(Path(str(config.get("fedgov-key", "")))), False
    node_id = sim_node_id(int(config["partition-id"]))
    return node_id, NodeKey.load_or_create(sim_key_path(Path(settings.sim_root), node_id)), True


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
    node_id, key, simulated = node_identity(settings, context)
    # Rehearsal controls (drift, faults, traces) come from the coordinator's run config:
    # only simulated nodes obey them, a real node never lets the coordinator change its data.
    rehearsal = settings if simulated else replace(settings, drift="", faults="", trace_dir="")
    config = msg.content["config"]
    server_round = int(config.get("server-round", 0))
    partition = drifted(_node_partition(settings, context), server_round,
                        parse_node_rounds(rehearsal.drift, "drift"), node_id)
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
    _trace(rehearsal, partition, server_round, len(partition.train))
    content = RecordDict({
        "arrays": ArrayRecord(model.state_dict()),
        "metrics": MetricRecord({"train-loss": loss, "num-examples": len(partition.train)}),
    })
    fault = parse_faults(rehearsal.faults).get(partition.partition_id)
    if fault and fault not in SIGNATURE_FAULTS:
        apply_fault(fault, content)
    attest(content, key, node_id, str(msg.metadata.run_id), server_round,
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
