"""The reply verifier: a node's signed statement must hold before its update counts.

The node signed (run id, round, update digest, dataset fingerprint, metrics digest, its
data summary's digest when it sent one, and the device it trained on when it stated one) with its registered key; the server recomputes the digests from the bytes it received. A reply
whose statement is missing, malformed, forged or inconsistent is rejected with a named
reason, and the run goes on.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from flwr.app import Message

from fedgov.devices import DEVICE_KEY, device_problem
from fedgov.protocol import (GOVERNANCE_KEY, METRICS_KEY, NUM_EXAMPLES_KEY, NamedArrays, reply_metrics_digest,
                             summary_text_of)
from fedgov.summaries import summary_digest
from governance.digests import arrays_digest
from governance.errors import FedgovError
from governance.fingerprint import DatasetFingerprint
from governance.identity import NodeRegistry, ReplyRejected, reply_signing_payload, verify_reply
from server.overhead import Overhead
from server.replies import DECODE_ERRORS

MAX_FINGERPRINT_TEXT = 65536  # an honest fingerprint is a few hundred characters


def weight_problem(num_examples: int, fingerprint: DatasetFingerprint) -> str | None:
    """Weight follows evidence: the examples a node claims are the rows of the dataset it signed for.

    FedAvg weighs each update by `num-examples`; unchecked, one node claiming 10^6 examples
    on 91 rows takes the average. The claim must equal the signed fingerprint's row count,
    and, in a version 1 fingerprint (an earlier node's), that count the sum of its label counts.
    """
    if fingerprint.label_counts is not None and sum(fingerprint.label_counts.values()) != fingerprint.rows:
        return (f"dataset fingerprint claims {fingerprint.rows} rows but its label counts sum to "
                f"{sum(fingerprint.label_counts.values())}")
    if num_examples != fingerprint.rows:
        return (f"num-examples {num_examples} disagrees with the {fingerprint.rows} rows of the node's signed "
                "dataset fingerprint (weight must follow evidence)")
    return None


class ReplyVerifier:
    """`check(round, reply, arrays)` for the governed strategy; keeps each verified statement for the record."""

    def __init__(self, run_id: str, binding: dict[int, str], registry: NodeRegistry, overhead: Overhead) -> None:
        self.run_id = run_id
        self.binding = binding
        self.registry = registry
        self.overhead = overhead
        self._verified: dict[int, dict[str, Any]] = {}

    def check(self, server_round: int, reply: Message, arrays: NamedArrays) -> str | None:
        """Verify the node's signed statement; the reason when it fails, else None."""
        with self.overhead.timed(server_round, "reply digests and signature checks"):
            return self._check(server_round, reply, arrays)

    def take(self, flower_node_id: int) -> dict[str, Any]:
        """The verified statement of a valid reply, once: what the round record holds of it."""
        return self._verified.pop(flower_node_id)

    def forget(self) -> None:
        """Drop what the round did not record (replies verified, then left out)."""
        self._verified.clear()

    def _check(self, server_round: int, reply: Message, arrays: NamedArrays) -> str | None:
        src = reply.metadata.src_node_id
        expected = self.binding.get(src, "")
        statement = reply.content.get(GOVERNANCE_KEY)
        if statement is None:
            return "unsigned: the reply carries no governance statement"
        if statement.get("node-id") != expected:
            return f"node id mismatch: signed as {str(statement.get('node-id'))[:80]!r}, bound to {expected!r}"
        fingerprint_text = statement.get("fingerprint", "{}")
        if not isinstance(fingerprint_text, str) or len(fingerprint_text) > MAX_FINGERPRINT_TEXT:
            return f"bad governance statement: the fingerprint is not text of at most {MAX_FINGERPRINT_TEXT} characters"
        device = statement.get(DEVICE_KEY)  # optional: a node of an earlier fedgov states none (fedgov/devices.py)
        if device is not None and device_problem(device):
            return device_problem(device)
        try:
            fingerprint = DatasetFingerprint.from_dict(json.loads(fingerprint_text))
            update, metrics = arrays_digest(arrays), reply_metrics_digest(reply.content)
            summary_text = summary_text_of(reply.content)
            if summary_text is not None and not isinstance(summary_text, str):
                return "bad governance statement: the summary is not text"
            summary = None if summary_text is None else summary_digest(summary_text)
            payload = reply_signing_payload(self.run_id, server_round, update, fingerprint.digest, metrics, summary,
                                            device)
            signature = statement.get("signature")
            verify_reply(self.registry, expected, signature if isinstance(signature, bytes) else None, payload)
        except ReplyRejected as err:
            return f"{err.reason}: {err}"
        except (FedgovError, *DECODE_ERRORS) as err:  # JSONDecodeError is a ValueError
            return f"bad governance statement: {type(err).__name__}: {str(err)[:200]}"
        problem = weight_problem(reply.content[METRICS_KEY][NUM_EXAMPLES_KEY], fingerprint)
        if problem:
            return problem
        parsed = None if summary_text is None else json.loads(summary_text)  # checked (server/summary_checks.py)
        if parsed is not None and parsed["rows"] != fingerprint.rows:
            return (f"bad summary: rows {parsed['rows']} disagrees with the {fingerprint.rows} rows of the node's "
                    "signed dataset fingerprint")
        self._verified[src] = {"update_digest": update, "metrics_digest": metrics,
                               "signature": base64.b64encode(signature).decode(),
                               "dataset_fingerprint": fingerprint.to_dict()}
        if parsed is not None:
            self._verified[src].update(summary_digest=summary, summary=parsed)
        if device is not None:
            self._verified[src]["device"] = device
        return None
