"""Model lineage read back from the ledger: each aggregation with its parent and contributors."""

from __future__ import annotations

from collections import defaultdict

from governance import entry_types as et
from governance.ledger import KeyDestroyedError, Ledger

ERASED = "erased"  # what lineage shows of a contributor whose data key was destroyed
from governance.lineage import Contribution, ModelVersion


def load_versions(ledger: Ledger) -> list[ModelVersion]:
    """Every model version the ledger records: initial models and every aggregation.

    A contributor is every node whose verified update went into the aggregation (for
    Krum-like strategies too: every valid update was an input to the choice).
    """
    replies: dict[tuple[str, int], dict[str, dict]] = defaultdict(dict)
    reply_entries = ledger.query(entry_type=et.ROUND_REPLY)
    ledger.prefetch_keys(reply_entries)
    for entry in reply_entries:
        try:
            payload = ledger.read_payload(entry)
        except KeyDestroyedError:  # the node was crypto-shredded: it still counts as a contributor
            payload = {"node_id": entry.node_id, "team": ERASED, "consent_record_id": ERASED,
                       "update_digest": ERASED, "dataset_fingerprint": {"digest": ERASED}}
        replies[(entry.run_id, entry.round)][entry.node_id] = payload  # the index field: every reply has one
    versions = []
    for entry in ledger.query(entry_type=et.RUN_STARTED):
        payload = ledger.read_payload(entry)
        versions.append(ModelVersion(payload["initial_model_hash"], entry.run_id, 0, None, []))
    for entry in ledger.query(entry_type=et.ROUND_AGGREGATED):
        payload = ledger.read_payload(entry)
        round_replies = replies[(entry.run_id, entry.round)]
        contributors = [
            Contribution(node, round_replies[node]["team"], round_replies[node]["dataset_fingerprint"]["digest"],
                         round_replies[node]["consent_record_id"] or "", round_replies[node]["update_digest"])
            for node in payload["contributors"]
        ]
        versions.append(ModelVersion(payload["output_model_hash"], entry.run_id, entry.round,
                                     payload["input_model_hash"], contributors))
    return versions


def load_operators(ledger: Ledger) -> dict[str, str]:
    """Run id -> the operator who launched it."""
    return {e.run_id: ledger.read_payload(e)["operator"] for e in ledger.query(entry_type=et.RUN_STARTED)}
