"""The consent selector: only nodes with valid consent for the run's purpose may be sent a round.

Selection happens before any instruction is built, and is written to the ledger first: a
round whose selection cannot be recorded never starts, and a round that finds too few
consenting nodes is recorded as failed, with every node's consent check.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from fedgov.settings import RunSettings
from governance import consent_store, entry_types as et
from governance.consent import ConsentCheck, find_valid_consent, records_by_principal
from governance.selection import SelectionError, select_nodes
from server.overhead import Overhead
from server.run_entries import RunEntries


SELECTION_STEP = "consent selection (read, draw, write)"  # the step's name in the overhead breakdown
# Consent checks -> the checks with further exclusions (state changed), and what to record of them.
CheckGate = Callable[[dict[str, ConsentCheck]], tuple[dict[str, ConsentCheck], dict[str, Any]]]


class ConsentSelector:
    """`select(round, candidates)` for the governed strategy; remembers the consent each node trained under."""

    def __init__(self, entries: RunEntries, settings: RunSettings, binding: dict[int, str],
                 overhead: Overhead, gate: CheckGate | None = None) -> None:
        self.entries = entries
        self.gate = gate  # the privacy budgets (server/privacy_keeper.py), when the run has DP
        self.settings = settings
        self.binding = binding
        self.overhead = overhead
        self.consent_used: dict[str, str | None] = {}  # node -> the consent record it was selected under
        self.consent_cache: dict[int, Any] = {}  # seq -> decrypted consent event

    def select(self, server_round: int, candidates: Sequence[int]) -> list[int]:
        """The Flower node ids this round may train; raises SelectionError (recorded) when too few consent."""
        with self.overhead.timed(server_round, SELECTION_STEP):
            return self._select(server_round, candidates)

    def _select(self, server_round: int, candidates: Sequence[int]) -> list[int]:
        ledger, purpose = self.entries.ledger, self.settings.governance.purpose
        records = consent_store.load_records(ledger, self.consent_cache)
        now = datetime.now(timezone.utc)
        flower_of = {self.binding[c]: c for c in candidates if c in self.binding}
        unbound = sorted(c for c in candidates if c not in self.binding)
        by_principal = records_by_principal(records.values())
        checks = {p: find_valid_consent(by_principal.get(p, []), p, purpose, now) for p in flower_of}
        checks, gated = self.gate(checks) if self.gate else (checks, {})
        privacy = {"privacy": gated} if gated else {}
        model = self.entries.model_hash
        try:
            record = select_nodes(sorted(flower_of), checks, self.settings.strategy.fraction_train,
                                  self.settings.min_nodes(), self.settings.training.seed, server_round)
        except SelectionError as err:
            ledger.append([self.entries.draft(et.ROUND_FAILED, {
                "reason": str(err), "checks": {p: c.to_dict() for p, c in sorted(checks.items())},
                "input_model_hash": model, **privacy}, round_=server_round, model=model)])
            raise
        self.consent_used = {p: record.checks[p]["record_id"] for p in record.selected}
        ledger.append([self.entries.draft(et.ROUND_SELECTION, {
            **record.to_dict(), "purpose": purpose, "checked_at": now.isoformat(),
            "unbound_flower_nodes": [str(c) for c in unbound],
            "flower_node_ids": {p: str(flower_of[p]) for p in record.selected}, **privacy,
        }, round_=server_round, model=model)])
        return [flower_of[p] for p in record.selected]
