"""fedgov's ClientApp: trains on the node's own data and replies weights and metrics.

Raw data never goes into a reply: it holds the updated weights, a few scalar metrics (its
training loss, and the loss and accuracy of the model it received on its local test split),
with monitoring on and the site's consent a summary of the rows it trained on (histograms over
the coordinator's shared bins, small counts suppressed: fedgov/summaries.py), and the node's
signed statement (digests and counts only). The node's id, key and site file come
from its own config (`--node-config 'fedgov-node-id=ID fedgov-key=PATH fedgov-site=PATH'`);
the key must already exist (a node never signs with a key it has just made up), and the site
file names the node's CSV, its schema and its policy (client/site.py). A file that does not
match its schema, or an update the policy does not allow, is an error reply with the reason,
which the coordinator records; never a crash. The simulation harness builds its simulated
nodes from the same steps (`simulations/client_app.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.common.constant import ErrorCode
from flwr.clientapp import ClientApp

from client.attestation import attest
from client.secagg import secagg_app, secagg_round
from client.site import Site
from fedgov.devices import device_text
from fedgov.local_data import LocalDataError, load_csv, schema_for
from fedgov.models import build_model
from fedgov.partition import Partition, load_partition, split_local
from fedgov.privacy import dp_reply
from fedgov.protocol import (ARRAYS_KEY, LOCAL_ACCURACY_KEY, LOCAL_LOSS_KEY, METRICS_KEY, MONITOR_REFERENCE_KEY,
                             NUM_EXAMPLES_KEY, SUMMARY_KEY, SUMMARY_TEXT_KEY)
from fedgov.settings import RunSettings
from fedgov.summaries import Reference, SummaryRule, effective_rule, summarize, summary_text
from fedgov.training import evaluate, resolve_device, train
from governance.errors import FedgovError, UsageError
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
                         "'fedgov-node-id=ID fedgov-key=PATH fedgov-site=PATH'")
    return NodeSelf(str(config["fedgov-node-id"]), NodeKey.load(Path(str(config.get("fedgov-key", "")))))


def deployed_site(context: Context) -> Site:
    """The node's site file (policy, data, schema) from its own config."""
    path = context.node_config.get("fedgov-site")
    if not path:
        raise UsageError("this node has no site file: start it with --node-config 'fedgov-site=PATH' (the "
                         "policy.toml `fedgov node init` made, with its [data] filled in)")
    return Site.load(Path(str(path)))


def site_partition(site: Site, settings: RunSettings) -> Partition:
    """The site's own CSV, checked, and split into train and local test; it must fit the run's model."""
    data = load_csv(site.data_path, site.schema)
    model_schema = schema_for(settings.training.dataset)
    want = model_schema.shape or (len(model_schema.features),)
    if tuple(data.x.shape[1:]) != tuple(want) or data.num_classes != len(model_schema.labels):
        raise LocalDataError(f"{site.data_path.name}: examples of shape {tuple(data.x.shape[1:])} with "
                             f"{data.num_classes} labels; the run's model ({settings.training.dataset}) takes shape "
                             f"{tuple(want)} with {len(model_schema.labels)} labels")
    return split_local(data, settings.training.seed)


def refusal(msg: Message, reason: str) -> Message:
    """An error reply carrying the node's reason, which the coordinator records (never a crash)."""
    return Message(Error(code=ErrorCode.MOD_FAILED_PRECONDITION, reason=reason[:500]), reply_to=msg)


def update_bytes(content: RecordDict) -> int:
    """The size of a reply's arrays as sent: what the site policy's max_update_bytes bounds."""
    return sum(len(array.data) for array in content[ARRAYS_KEY].values())


def server_round_of(msg: Message) -> int:
    """The round an instruction belongs to, as the strategy sent it."""
    return int(msg.content["config"].get("server-round", 0))


def local_evaluation(model: torch.nn.Module, partition: Partition, device: torch.device) -> dict[str, float]:
    """Loss and accuracy of the received global model on the node's own data, before it trains.

    Measured on the local test split, which the node never trains on (on the train split when
    the node holds too few rows for a test split): the per-node accuracy of the compliance
    report, at the cost of one forward pass and no extra round trip.
    """
    data = partition.test if len(partition.test) else partition.train
    loss, accuracy = evaluate(model, data, device)
    return {LOCAL_LOSS_KEY: loss, LOCAL_ACCURACY_KEY: accuracy}


def summary_rule(settings: RunSettings, site: SummaryRule | None) -> SummaryRule:
    """What this node shares: the run's monitoring settings, tightened by its own policy (a simulated
    node has none and follows the run)."""
    m = settings.monitoring
    run = SummaryRule(m.monitor, m.monitor_min_count, m.monitor_noise,
                      m.monitor_noise_scale if m.monitor_noise != "none" else 0.0)
    return effective_rule(run, site)


def reference_of(config: ConfigRecord, partition: Partition) -> Reference | None:
    """The shared bins the coordinator sent this round, or None when it sent none."""
    text = config.get(MONITOR_REFERENCE_KEY)
    if text is None:
        return None
    try:
        reference = Reference.from_text(str(text))
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise UsageError(f"the train config's {MONITOR_REFERENCE_KEY} is malformed ({type(err).__name__})") from None
    if len(reference.features) != partition.train.num_features:
        raise UsageError(f"the train config's {MONITOR_REFERENCE_KEY} names {len(reference.features)} features; this "
                         f"node's data has {partition.train.num_features}")
    return reference


def add_summary(content: RecordDict, reference: Reference | None, partition: Partition, rule: SummaryRule) -> None:
    """Add the summary of the rows the node trained on this round, when the run and the site share one."""
    if reference is None or not rule.share:
        return
    summary = summarize(partition.train.x, partition.train.y, reference, rule)
    content[SUMMARY_KEY] = ConfigRecord({SUMMARY_TEXT_KEY: summary_text(summary)})


def train_reply(msg: Message, settings: RunSettings, me: NodeSelf, partition: Partition,
                before_signing: Callable[[RecordDict], None] | None = None,
                rule: SummaryRule | None = None) -> RecordDict:
    """Evaluate the received global model on `partition`, train it, then sign the reply's content.

    `rule` is what the node shares of its data (default: what the run asks, for a simulated
    node). Under differential privacy the content is first made what DP needs
    (`fedgov.privacy.dp_reply`: weight 1, and with client-side clipping the update clipped), so
    the signature covers what is sent. `before_signing` lets the simulation harness change the content the node signs (its
    rehearsed faults); a deployed node passes nothing.
    """
    training = settings.training
    config = msg.content["config"]
    server_round = server_round_of(msg)
    reference = reference_of(config, partition)  # before training: a malformed one wastes no work
    model = build_model(training.dataset, training.seed)
    model.load_state_dict(msg.content[ARRAYS_KEY].to_torch_state_dict())
    device = resolve_device(training.device)
    received = local_evaluation(model, partition, device)
    loss = train(
        model,
        partition.train,
        epochs=int(config.get("local-epochs", training.local_epochs)),
        batch_size=int(config.get("batch-size", training.batch_size)),
        lr=float(config.get("lr", training.lr)),
        device=device,
        seed=training.seed + partition.partition_id * 1000 + server_round,
        proximal_mu=float(config.get("proximal-mu", 0.0)),
    )
    content = RecordDict({
        ARRAYS_KEY: ArrayRecord(model.state_dict()),
        METRICS_KEY: MetricRecord({"train-loss": loss, **received, NUM_EXAMPLES_KEY: len(partition.train)}),
    })
    content = dp_reply(msg, content, settings.privacy)  # clipped (client-fixed) before it is signed
    add_summary(content, reference, partition, rule if rule is not None else summary_rule(settings, None))
    if before_signing is not None:
        before_signing(content)
    attest(content, me.key, me.node_id, str(msg.metadata.run_id), server_round,
           fingerprint_arrays(partition.train.x, partition.train.y), device=device_text(device))
    return content


def evaluate_reply(msg: Message, settings: RunSettings, partition: Partition) -> Message:
    """Evaluate the received model on the node's local test split."""
    training = settings.training
    model = build_model(training.dataset, training.seed)
    model.load_state_dict(msg.content[ARRAYS_KEY].to_torch_state_dict())
    loss, accuracy = evaluate(model, partition.test, resolve_device(training.device))
    metrics = MetricRecord({"eval-loss": loss, "eval-acc": accuracy, NUM_EXAMPLES_KEY: max(len(partition.test), 1)})
    return Message(RecordDict({METRICS_KEY: metrics}), reply_to=msg)


@app.train()
def train_handler(msg: Message, context: Context) -> Message:
    """Train the received global model on this site's own data, then sign the reply, if the site allows it."""
    try:
        settings = RunSettings.from_run_config(context.run_config)
        me, site = deployed_self(context), deployed_site(context)
        partition = site_partition(site, settings)
        if settings.secagg.enabled:  # a SecAgg+ run's messages, in Flower's legacy layout (client/secagg.py)
            return secagg_app(settings, me.node_id, me.key, partition, secagg_round(msg))(msg, context)
        content = train_reply(msg, settings, me, partition, rule=summary_rule(settings, site.monitoring))
    except FedgovError as err:  # a malformed file, config or identity, or clipping refused: the reason goes back
        return refusal(msg, str(err))
    problem = site.policy.check_update(update_bytes(content))
    return refusal(msg, problem) if problem else Message(content, reply_to=msg)


@app.evaluate()
def evaluate_handler(msg: Message, context: Context) -> Message:
    """Evaluate the received model on this site's local test split."""
    try:
        settings = RunSettings.from_run_config(context.run_config)
        partition = site_partition(deployed_site(context), settings)
    except FedgovError as err:
        return refusal(msg, str(err))
    return evaluate_reply(msg, settings, partition)
