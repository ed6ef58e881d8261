"""Model lineage read back from the ledger: each aggregation with its parent and contributors."""

from __future__ import annotations

from collections import defaultdict

from governance import entry_types as et
from governance.ledger import KeyDestroyedError, Ledger

ERASED = "erased"  # what lineage shows of a contributor whose data key was destroyed
MASKED = "SecAgg+"  # shown as the update of a SecAgg+ round's contributor: the server never saw its update (round.secagg)
from governance.access_policy import SEALED_LABEL, AccessDenied  # noqa: E402
from governance.errors import UsageError  # noqa: E402
from governance.lineage import Contribution, ModelVersion, TriggerLink  # noqa: E402


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
            payload = _placeholder(entry.node_id, ERASED)
        except AccessDenied:  # sealed to auditors: the contributor is known from the index, its details are not
            payload = _placeholder(entry.node_id, SEALED_LABEL)
        replies[(entry.run_id, entry.round)][entry.node_id] = payload  # the index field: every reply has one
    versions = []
    triggers: dict[str, TriggerLink] = {}
    for entry in ledger.query(entry_type=et.RUN_STARTED):
        payload = ledger.read_payload(entry)
        if isinstance(payload.get("trigger"), dict):
            triggers[entry.run_id] = _trigger(ledger, payload["trigger"])
        versions.append(ModelVersion(payload["initial_model_hash"], entry.run_id, 0, None, [],
                                     triggers.get(entry.run_id)))
    for entry in ledger.query(entry_type=et.ROUND_AGGREGATED):
        payload = ledger.read_payload(entry)
        round_replies = replies[(entry.run_id, entry.round)]
        contributors = [
            Contribution(node, round_replies[node]["team"], round_replies[node]["dataset_fingerprint"]["digest"],
                         round_replies[node]["consent_record_id"] or "", round_replies[node].get("update_digest", MASKED))
            for node in payload["contributors"]
        ]
        versions.append(ModelVersion(payload["output_model_hash"], entry.run_id, entry.round,
                                     payload["input_model_hash"], contributors, triggers.get(entry.run_id)))
    return versions


def _trigger(ledger: Ledger, link: dict) -> TriggerLink:
    """A run's trigger link, with what the monitor.trigger entry decided where it can be read and is that entry."""
    seq, leaf_hash = link.get("seq"), str(link.get("leaf_hash", ""))
    if not isinstance(seq, int) or isinstance(seq, bool):
        return TriggerLink(0, leaf_hash, (), "", "the run.started trigger names no seq")
    try:
        entry = ledger.get(seq)
    except UsageError:
        return TriggerLink(seq, leaf_hash, (), "", "no such entry")
    if entry.entry_type != et.MONITOR_TRIGGER or entry.leaf_hash.hex() != leaf_hash:
        return TriggerLink(seq, leaf_hash, (), "", f"entry {seq} is not the monitor.trigger this run recorded")
    try:
        payload = ledger.read_payload(entry)
    except (KeyDestroyedError, AccessDenied):
        return TriggerLink(seq, leaf_hash)
    fired = payload.get("fired")
    return TriggerLink(seq, leaf_hash, tuple(f for f in fired if isinstance(f, str)) if isinstance(fired, list) else (),
                       str(payload.get("decision", "")), str(payload.get("reason", "")))


def _placeholder(node_id: str, label: str) -> dict:
    return {"node_id": node_id, "team": label, "consent_record_id": label, "update_digest": label,
            "dataset_fingerprint": {"digest": label}}


def load_operators(ledger: Ledger) -> dict[str, str]:
    """Run id -> the operator who launched it."""
    return {e.run_id: ledger.read_payload(e)["operator"] for e in ledger.query(entry_type=et.RUN_STARTED)}
