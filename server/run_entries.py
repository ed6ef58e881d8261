"""One run's ledger entries: every entry of a governed run carries its run id, config hash and model.

The three governance roles (selector, reply verifier, round recorder) write through one
`RunEntries`, so they agree on the run's identity and on which model a round started from.
"""

from __future__ import annotations

import hashlib
from typing import Any

from governance import entry_types as et
from governance.ledger import EntryDraft, Ledger
from governance.verify.canonical import canonical_bytes


def config_hash(run_config: dict[str, Any]) -> str:
    """SHA-256 of the run config's canonical JSON (RFC 8785): what every entry of the run names."""
    return hashlib.sha256(canonical_bytes(run_config)).hexdigest()


class RunEntries:
    """The run's ledger, its identity, and the model the next round starts from."""

    def __init__(self, ledger: Ledger, run_id: str, run_config: dict[str, Any]) -> None:
        self.ledger = ledger
        self.run_id = run_id
        self.config_hash = config_hash(run_config)
        self.model_hash = ""  # the last model archived: the one sent in the next round

    def draft(self, entry_type: str, payload: dict[str, Any], *, round_: int | None = None,
              node_id: str = "", model: str = "", scope: str | None = None) -> EntryDraft:
        """An entry of this run, scoped to the run unless told otherwise."""
        return EntryDraft(entry_type, payload, scope=scope or et.run_scope(self.run_id), run_id=self.run_id,
                          round=round_, node_id=node_id, model_hash=model, config_hash=self.config_hash)
