"""The privacy keeper: each node's epsilon cap enforced at selection, and each DP release recorded.

At selection, a node with valid consent whose next release would take its epsilon past its
cap is excluded with the state `privacy-budget` (its projection goes into `round.selection`
under `privacy`); the draw, and its re-draw by anyone (governance/verify/selection.py), treat
it like any other non-valid state. Before it reads the releases it signs the ledger as it stands,
so a ledger whose releases were deleted (rolled back, rewritten) selects no node. Once a round's
replies are checked and enough are valid for an aggregate, the release is recorded
(`round.privacy`) *before* the model is built:
a crash after it over-counts, never under-counts. Budgets are recomputed from every release
the ledger holds, of every run (docs/privacy.md), in the `ledger:privacy` scope, which no shred erases.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fedgov.settings import RunSettings
from governance import entry_types as et
from governance.consent import VALID, ConsentCheck
from governance.errors import PolicyError
from governance.ledger import KeyDestroyedError
from governance.ledger.signed_head import SigningRefusedError
from governance.privacy.accounting import epsilon
from governance.privacy.budget import PRIVACY_BUDGET, project, strictest_delta
from governance.privacy.events import Release, noise_multipliers, releases_by_node
from server.governed import RoundFacts
from server.run_entries import RunEntries


class PrivacyKeeper:
    """The selection's privacy gate and the `round.privacy` recorder of one DP run."""

    def __init__(self, entries: RunEntries, settings: RunSettings, binding: dict[int, str]) -> None:
        self.entries = entries
        self.privacy = settings.privacy
        self.binding = binding
        self.minimum = settings.aggregation_minimum()
        self._cache: dict[int, Release] = {}  # seq -> a recorded release (entries never change)

    def releases(self) -> list[Release]:
        """Every release the ledger records, in ledger order; an unreadable one refuses (fail closed)."""
        ledger = self.entries.ledger
        for entry in ledger.query(entry_type=et.ROUND_PRIVACY):
            if entry.seq not in self._cache:
                try:
                    payload = ledger.read_payload(entry)
                except KeyDestroyedError:
                    raise PolicyError(f"round.privacy seq {entry.seq} (run {entry.run_id}) cannot be read: budgets "
                                      "cannot be accounted, so no node is selected") from None
                self._cache[entry.seq] = Release.from_payload(entry.run_id, entry.round, payload)
        return [self._cache[seq] for seq in sorted(self._cache)]

    def _check_not_rolled_back(self) -> None:
        """Sign the ledger as it stands before a budget is read from it: a release deleted from the database (the
        ledger rolled back or rewritten) would reset a spent budget, and the signer refuses such a ledger."""
        try:
            self.entries.ledger.checkpoint()
        except SigningRefusedError as err:
            raise PolicyError(f"the ledger does not extend what this workspace signed, so the privacy budgets "
                              f"cannot be accounted from it and no node is selected: {err}") from None

    def caps(self, nodes: list[str]) -> dict[str, float]:
        """Each node's cap in this run, for the nodes that have one."""
        return {node: cap for node in nodes if (cap := self.privacy.cap_for(node)) is not None}

    def gate(self, checks: dict[str, ConsentCheck]) -> tuple[dict[str, ConsentCheck], dict[str, Any]]:
        """The consent checks with every node whose next release would exceed its cap set to `privacy-budget`,
        and each capped, consenting node's projection with the sigma and delta it assumed (what `round.selection`
        records under `privacy`)."""
        caps = self.caps([node for node, check in checks.items() if check.state == VALID])
        if not caps:
            return checks, {}
        self._check_not_rolled_back()
        history = releases_by_node(self.releases())
        gated, projections = dict(checks), {}
        for node, cap in sorted(caps.items()):
            projection = project(history.get(node, []), self.privacy.dp_noise_multiplier, self.privacy.dp_delta, cap)
            projections[node] = projection.to_dict()
            if projection.exceeds:
                gated[node] = replace(checks[node], state=PRIVACY_BUDGET)
        # what the projections assumed, so the record can be redone from it and the releases before it
        return gated, {"noise_multiplier": self.privacy.dp_noise_multiplier, "delta": self.privacy.dp_delta,
                       "nodes": projections}

    # -- round observer ------------------------------------------------------------------

    def round_selected(self, facts: RoundFacts) -> None:
        """The gate ran inside the selection."""

    def round_checked(self, facts: RoundFacts) -> None:
        if len(facts.valid) < self.minimum:
            return  # no aggregate, so no release
        participants = tuple(sorted(self.binding[m.metadata.src_node_id] for m in facts.valid))
        candidates = [self.binding[c] for c in facts.candidates if c in self.binding]
        release = Release(self.entries.run_id, facts.server_round, self.privacy.dp, self.privacy.dp_noise_multiplier,
                          self.privacy.dp_clipping_norm, self.privacy.dp_delta, len(candidates), len(facts.selected),
                          participants, self.caps(candidates))
        history = releases_by_node([*self.releases(), release])
        after = {node: epsilon(noise_multipliers(history[node]), strictest_delta(history[node]) or self.privacy.dp_delta)
                 for node in participants}
        self.entries.ledger.append([self.entries.draft(et.ROUND_PRIVACY, release.payload(after),
                                                       round_=facts.server_round, model=self.entries.model_hash,
                                                       scope=et.PRIVACY_SCOPE)])

    def round_aggregated(self, facts: RoundFacts) -> None:
        """The release was recorded when the replies were checked."""
