"""Ledger entries: what callers hand in (EntryDraft) and what is stored (Entry).

An entry's leaf bytes are defined by the verifier (governance/verify/leaf.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from governance.verify.leaf import leaf_bytes


@dataclass(frozen=True)
class EntryDraft:
    """An entry to append. Index fields are plaintext and must carry no personal data."""

    entry_type: str
    payload: dict[str, Any]
    scope: str
    run_id: str = ""
    round: int | None = None
    node_id: str = ""
    model_hash: str = ""
    config_hash: str = ""


@dataclass(frozen=True)
class Entry:
    """A stored entry: plaintext index fields plus the encrypted payload."""

    seq: int
    entry_type: str
    timestamp: str
    run_id: str
    round: int | None
    node_id: str
    model_hash: str
    config_hash: str
    key_id: str
    ciphertext: bytes = field(repr=False)
    leaf_hash: bytes = field(repr=False)

    def leaf_bytes(self) -> bytes:
        return leaf_bytes(self.seq, self.timestamp, self.entry_type, self.run_id, self.round,
                          self.node_id, self.model_hash, self.config_hash, self.key_id, self.ciphertext)

    def index_fields(self) -> dict[str, Any]:
        """The plaintext fields, for listings."""
        return {"seq": self.seq, "entry_type": self.entry_type, "timestamp": self.timestamp,
                "run_id": self.run_id, "round": self.round, "node_id": self.node_id,
                "model_hash": self.model_hash, "config_hash": self.config_hash, "key_id": self.key_id}
