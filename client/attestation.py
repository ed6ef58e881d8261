"""The node's signed statement on each reply: who it is, what it sent, what data it used.

The node signs (run id, round, update digest, dataset fingerprint, metrics digest, the
digest of its data summary when it sends one, and the device it trained on) with its own Ed25519 key. The statement travels as a `governance` ConfigRecord beside the
weights and metrics; it holds digests and counts, never rows.
"""

from __future__ import annotations

import json

from flwr.app import ConfigRecord, RecordDict

from fedgov.devices import DEVICE_KEY
from fedgov.protocol import GOVERNANCE_KEY, reply_metrics_digest, summary_text_of, update_digest
from fedgov.summaries import summary_digest
from governance.fingerprint import DatasetFingerprint
from governance.identity import NodeKey, reply_signing_payload


def attest(content: RecordDict, key: NodeKey, node_id: str, run_id: str, server_round: int,
           fingerprint: DatasetFingerprint, device: str | None = None) -> None:
    """Add the signed governance statement to a train reply, in place; `device` is where the node trained
    (fedgov/devices.py), signed with the rest."""
    text = summary_text_of(content)
    payload = reply_signing_payload(run_id, server_round, update_digest(content), fingerprint.digest,
                                    reply_metrics_digest(content),
                                    summary_digest(text) if isinstance(text, str) else None, device)
    content[GOVERNANCE_KEY] = ConfigRecord({
        "node-id": node_id,
        "signature": key.sign(payload),
        "fingerprint": json.dumps(fingerprint.to_dict(), sort_keys=True),
        **({DEVICE_KEY: device} if device is not None else {}),
    })
