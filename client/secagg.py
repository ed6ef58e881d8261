"""A node's side of SecAgg+: the same training, sent masked, with a signed statement on the mask.

Flower 1.42 runs SecAgg+ only through its legacy API: `secaggplus_mod` on a ClientApp built
from a `client_fn` whose client is a `NumPyClient`. `secagg_app` builds that ClientApp for
one node; the node's `@app.train()` handler hands a SecAgg+ run's messages to it (a mod on
the Message-API handler fails: the mod expects the legacy message layout).

The node trains as in `client.app.train_reply` (which hands SecAgg+ messages here). `secaggplus_mod` then quantizes, weights and
masks the update; the server never sees it unmasked. `signing_mod`, outside it, signs what
the node sent: (run, round, SHA-256 of the masked vector, dataset fingerprint, digest of the
plaintext fit metrics), the payload of `reply_signing_payload` with the masked vector's
digest in the update digest's place (fedgov/secagg.py).
"""

from __future__ import annotations

import json

import numpy as np
import torch
from flwr.app import ConfigRecord, Context, Message
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.compat.common.recorddict_compat import recorddict_to_fitres

from fedgov.devices import DEVICE_KEY, device_text
from fedgov.models import build_model
from fedgov.partition import Partition
from fedgov.protocol import GOVERNANCE_KEY, LOCAL_ACCURACY_KEY, LOCAL_LOSS_KEY
from fedgov.secagg import fit_metrics_digest, masked_digest
from fedgov.settings import RunSettings
from fedgov.training import evaluate, resolve_device, train
from governance.fingerprint import fingerprint_arrays
from governance.identity import NodeKey, reply_signing_payload


class SecAggNode(NumPyClient):
    """Trains the received model on the node's partition; SecAgg+ masks what `fit` returns."""

    def __init__(self, settings: RunSettings, partition: Partition, server_round: int) -> None:
        self.settings = settings
        self.partition = partition
        self.server_round = server_round

    def fit(self, parameters: list[np.ndarray], config: dict) -> tuple[list[np.ndarray], int, dict]:
        training = self.settings.training
        model = build_model(training.dataset, training.seed)
        keys = list(model.state_dict())
        model.load_state_dict({k: torch.from_numpy(np.asarray(a)) for k, a in zip(keys, parameters, strict=True)})
        device = resolve_device(training.device)
        # the received model on the local test split, as client.app.local_evaluation measures it (that module
        # hands SecAgg+ messages to this one, so this one cannot import it back)
        data = self.partition.test if len(self.partition.test) else self.partition.train
        local_loss, local_accuracy = evaluate(model, data, device)
        received = {LOCAL_LOSS_KEY: local_loss, LOCAL_ACCURACY_KEY: local_accuracy}
        loss = train(model, self.partition.train, epochs=int(config.get("local-epochs", training.local_epochs)),
                     batch_size=int(config.get("batch-size", training.batch_size)),
                     lr=float(config.get("lr", training.lr)), device=device,
                     seed=training.seed + self.partition.partition_id * 1000 + self.server_round,
                     proximal_mu=float(config.get("proximal-mu", 0.0)))
        updated = [v.detach().cpu().numpy() for v in model.state_dict().values()]
        return updated, len(self.partition.train), {"train-loss": loss, **received}


def signing_mod(node_id: str, key: NodeKey, partition: Partition, device: str | None = None):
    """A mod outside `secaggplus_mod`: signs the masked vector the node sends in the masked-vectors stage (with
    `device`, where `fit` trained: fedgov/devices.py)."""
    fingerprint = fingerprint_arrays(partition.train.x, partition.train.y)

    def mod(msg: Message, context: Context, call_next) -> Message:
        configs = msg.content.config_records.get(RECORD_KEY_CONFIGS)
        stage = configs.get(Key.STAGE) if configs is not None else None  # read before secaggplus_mod pops it
        reply = call_next(msg, context)
        if stage != Stage.COLLECT_MASKED_VECTORS or reply.has_error():
            return reply
        masked = reply.content.config_records[RECORD_KEY_CONFIGS][Key.MASKED_PARAMETERS]
        fitres = recorddict_to_fitres(reply.content, keep_input=True)
        payload = reply_signing_payload(str(msg.metadata.run_id), int(msg.metadata.group_id), masked_digest(masked),
                                        fingerprint.digest, fit_metrics_digest(fitres.metrics, fitres.num_examples),
                                        device=device)
        reply.content.config_records[GOVERNANCE_KEY] = ConfigRecord({
            "node-id": node_id,
            "signature": key.sign(payload),
            "fingerprint": json.dumps(fingerprint.to_dict(), sort_keys=True),
            **({DEVICE_KEY: device} if device is not None else {}),
        })
        return reply

    return mod


def secagg_app(settings: RunSettings, node_id: str, key: NodeKey, partition: Partition,
               server_round: int) -> ClientApp:
    """The legacy ClientApp that answers one SecAgg+ message for this node (its protocol state lives in
    the node's Context, which Flower keeps between messages)."""
    return ClientApp(client_fn=lambda context: SecAggNode(settings, partition, server_round).to_client(),
                     mods=[signing_mod(node_id, key, partition, device_text(resolve_device(settings.training.device))),
                           secaggplus_mod])


def secagg_round(msg: Message) -> int:
    """The round a SecAgg+ message belongs to: the workflow sends it as the message's group id."""
    return int(msg.metadata.group_id)
