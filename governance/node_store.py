"""The node registry kept in the ledger: which pseudonymous node id holds which public key.

Registering is an entry, so a key swapped later shows in the audit trail.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from governance.entry_types import NODE_REGISTERED, REGISTRY_SCOPE
from governance.identity import NodeRegistry
from governance.ledger import EntryDraft, Ledger
from governance.names import check_name


def load_registry(ledger: Ledger) -> NodeRegistry:
    """Fold every `node.registered` entry, in ledger order, into a registry."""
    registry = NodeRegistry()
    for entry in sorted(ledger.query(entry_type=NODE_REGISTERED), key=lambda e: e.seq):
        payload = ledger.read_payload(entry)
        registry.register(payload["node_id"], bytes.fromhex(payload["public_key"]), payload["team"])
    return registry


def register_nodes(ledger: Ledger, nodes: Iterable[tuple[str, bytes, str]], actor: str,
                   details: Mapping[str, Mapping[str, Any]] | None = None) -> int:
    """Register (node id, public key, team) triples not yet registered; return how many were new.

    Re-registering a node with the same key and team is a no-op; a different key for a
    known node is refused by the registry with one clear line. `details` adds members to a
    node's entry (a deployed node's Flower node id and auth key hash).
    """
    registry = load_registry(ledger)
    drafts = []
    for node_id, public_key, team in nodes:
        check_name(node_id, "node id")
        check_name(team, f"team of node {node_id}")
        known = registry.get(node_id)
        registry.register(node_id, public_key, team)
        if known is None:
            drafts.append(EntryDraft(NODE_REGISTERED, {**(details or {}).get(node_id, {}), "node_id": node_id,
                                                       "public_key": public_key.hex(), "team": team, "actor": actor},
                                     scope=REGISTRY_SCOPE, node_id=node_id))
    if drafts:
        ledger.append(drafts, sign=True)
    return len(drafts)
