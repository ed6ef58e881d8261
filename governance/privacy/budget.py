"""Spent and remaining epsilon per node, and the selection's question: would one more round exceed a cap?

Both are recomputed from the recorded releases (`round.privacy`), never from a stored epsilon.
A node's budget counts every release of every run its update entered: its data is the same
data from one run to the next.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from governance.privacy.accounting import epsilon
from governance.privacy.events import Release, noise_multipliers, releases_by_node

PRIVACY_BUDGET = "privacy-budget"  # the selection state of a node whose next round would exceed its cap


@dataclass(frozen=True)
class NodeBudget:
    """What one node has spent, at `delta`, against its cap (None: no cap)."""

    node_id: str
    releases: int
    runs: list[str]
    epsilon_spent: float
    delta: float | None
    cap: float | None

    @property
    def remaining(self) -> float | None:
        return None if self.cap is None else max(self.cap - self.epsilon_spent, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "releases": self.releases, "runs": self.runs,
                "epsilon_spent": self.epsilon_spent, "delta": self.delta, "cap": self.cap,
                "remaining": self.remaining}


@dataclass(frozen=True)
class Projection:
    """A node's epsilon now and after one more release of `noise_multiplier`, against its cap."""

    spent: float
    next: float
    cap: float

    @property
    def exceeds(self) -> bool:
        return self.next > self.cap

    def to_dict(self) -> dict[str, float]:
        return {"epsilon_spent": self.spent, "epsilon_next": self.next, "epsilon_cap": self.cap}


def strictest_delta(history: Sequence[Release], delta: float | None = None) -> float | None:
    """The smallest delta among `history`'s releases (and `delta`, the next release's): a node's epsilon is
    stated there, so a later run with a looser delta cannot restate a spent budget as a smaller epsilon."""
    deltas = [r.delta for r in history] + ([delta] if delta is not None else [])
    return min(deltas) if deltas else None


def project(history: Sequence[Release], noise_multiplier: float, delta: float, cap: float) -> Projection:
    """Would the node, having entered `history`, exceed `cap` by entering one more release (at `delta`)?

    Both figures are at the strictest delta of the history and the next release.
    """
    sigmas = noise_multipliers(history)
    delta = strictest_delta(history, delta) or delta
    return Projection(epsilon(sigmas, delta), epsilon([*sigmas, noise_multiplier], delta), cap)


def node_budgets(releases: Iterable[Release], nodes: Iterable[str]) -> list[NodeBudget]:
    """Every node's budget: spent at the smallest delta of its releases, against the latest cap recorded for it.

    A node with no release has spent nothing (its delta unknown).
    """
    releases = list(releases)
    by_node = releases_by_node(releases)
    caps: dict[str, float] = {}
    for release in releases:  # the ledger's order: the latest recorded cap wins
        caps.update({node: float(cap) for node, cap in release.caps.items()})
    out = []
    for node in sorted(set(nodes) | set(by_node)):
        history = by_node.get(node, [])
        delta = strictest_delta(history)
        spent = epsilon(noise_multipliers(history), delta) if delta is not None else 0.0
        out.append(NodeBudget(node, len(history), sorted({r.run_id for r in history}), spent, delta, caps.get(node)))
    return out
