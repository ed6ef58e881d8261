"""The node's signed statement on each reply: who it is, what it sent, what data it used.

The node signs (run id, round, update digest, dataset fingerprint, metrics digest) with
its own Ed25519 key. The statement travels as a `governance` ConfigRecord beside the
weights and metrics; it holds digests and counts, never rows.
"""

from __future__ import annotations

import json

from flwr.app import ConfigRecord, RecordDict

from fedgov.protocol import GOVERNANCE_KEY, reply_metrics_digest, update_digest
from governance.fingerprint import DatasetFingerprint
from governance.identity import NodeKey, reply_signing_payload


def attest(content: RecordDict, key: NodeKey, node_id: str, run_id: str, server_round: int,
           fingerprint: DatasetFingerprint) -> None:
    """Add the signed governance statement to a train reply, in place."""
    payload = reply_signing_payload(run_id, server_round, update_digest(content), fingerprint.digest,
                                    reply_metrics_digest(content))
    content[GOVERNANCE_KEY] = ConfigRecord({
        "node-id": node_id,
        "signature": key.sign(payload),
        "fingerprint": json.dumps(fingerprint.to_dict(), sort_keys=True),
    })
