"""Rehearsal on the coordinator's side: a node withdraws its consent before a round (`--revoke NODE@ROUND`).

The withdrawal is a real ledger entry, written as the compliance officer's `fedgov consent
revoke` would write it; the consent selector then finds no valid consent for that node. Only the
simulated ServerApp (`simulations/apps.py`) uses it; what a simulated node does wrong on purpose
is `simulations/rehearsal.py`, kept apart so that Ray's actors never load the ledger.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable, Sequence

from governance import consent_store
from governance.consent import VALID, find_valid_consent, records_by_principal
from server.consent_selector import SELECTION_STEP, ConsentSelector
from server.governed import Selector


def withdrawing_before_rounds(revoke: dict[str, int]) -> Callable[[ConsentSelector], Selector]:
    """A selector that first withdraws the consent of the nodes due this round, then selects.

    The rehearsal of a node withdrawing consent mid-run: the withdrawal is a real ledger
    entry, and the consent selector then finds no valid consent for that node.
    """

    def around(selector: ConsentSelector) -> Selector:
        def select(server_round: int, candidates: Sequence[int]) -> list[int]:
            due = [node for node, at_round in revoke.items() if at_round == server_round]
            if due:
                with selector.overhead.timed(server_round, SELECTION_STEP):
                    _withdraw(selector, due)
            return selector.select(server_round, candidates)

        return select

    return around


def _withdraw(selector: ConsentSelector, nodes: list[str]) -> None:
    ledger, purpose = selector.entries.ledger, selector.settings.governance.purpose
    records = records_by_principal(consent_store.load_records(ledger, selector.consent_cache).values())
    now = datetime.now(timezone.utc)
    for node in nodes:
        check = find_valid_consent(records.get(node, []), node, purpose, now)
        if check.state == VALID:
            consent_store.withdraw(ledger, check.record_id, "consent withdrawn mid-run (scenario)",
                                   actor=f"node:{node}")
