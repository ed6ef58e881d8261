"""The node's signed statement on each reply: who it is, what it sent, what data it used.

The node signs (run id, round, update digest, dataset fingerprint, metrics digest, and the
digest of its data summary when it sends one) with its own Ed25519 key. The statement travels as a `governance` ConfigRecord beside the
weights and metrics; it holds digests and counts, never rows.
"""

from __future__ import annotations

import json

from flwr.app import ConfigRecord, RecordDict

from fedgov.protocol import GOVERNANCE_KEY, reply_metrics_digest, summary_text_of, update_digest
from fedgov.summaries import summary_digest
from governance.fingerprint import DatasetFingerprint
from governance.identity import NodeKey, reply_signing_payload


def attest(content: RecordDict, key: NodeKey, node_id: str, run_id: str, server_round: int,
           fingerprint: DatasetFingerprint) -> None:
    """Add the signed governance statement to a train reply, in place."""
    text = summary_text_of(content)
    payload = reply_signing_payload(run_id, server_round, update_digest(content), fingerprint.digest,
                                    reply_metrics_digest(content),
                                    summary_digest(text) if isinstance(text, str) else None)
    content[GOVERNANCE_KEY] = ConfigRecord({
        "node-id": node_id,
        "signature": key.sign(payload),
        "fingerprint": json.dumps(fingerprint.to_dict(), sort_keys=True),
    })
