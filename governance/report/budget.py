"""ε spent per node, recomputed from the recorded DP events alone, with the project's accountant.

The accounting is governance/privacy's (`accounting.epsilon`: dp-accounting's RDP accountant,
one Gaussian release per round a node's update entered, zero-out one node, no amplification);
this module only replays the recorded releases in ledger order. A node's budget is its own
across runs (its data is the same data), so the releases of every run count: what the node had
spent before this run, then after each of this run's rounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from governance.errors import UsageError
from governance.privacy.accounting import accountant_name, epsilon

ACCOUNTANT = accountant_name()


@dataclass(frozen=True)
class DpEvent:
    """One recorded release (round.privacy): where it is in the ledger, its noise multiplier, δ, participants."""

    seq: int
    run_id: str
    round: int
    noise_multiplier: float
    delta: float
    participants: Sequence[str]


@dataclass(frozen=True)
class Replay:
    before: dict[str, float]  # node -> ε of its releases in earlier runs, at the smallest δ of them and this run's first
    after: dict[str, list[tuple[int, float]]]  # node -> (round, ε after it) for this run's rounds it entered
    problem: str  # why the releases cannot be accounted ("" when they can)


def replay(events: Sequence[DpEvent], run_id: str) -> Replay:
    """Each node's ε before this run and after each of its rounds in it; a release that cannot be accounted
    (a multiplier that is not > 0, a δ outside (0, 1)) stops the replay and is named, never read as nothing."""
    history: dict[str, list[float]] = {}
    before: dict[str, float] = {}
    after: dict[str, list[tuple[int, float]]] = {}
    strictest: dict[str, float] = {}  # node -> the smallest delta of its releases so far (docs/privacy.md)
    try:
        for e in sorted(events, key=lambda x: x.seq):
            for node in e.participants:
                delta = min(strictest.get(node, e.delta), e.delta)
                if e.run_id == run_id and node not in after:
                    before[node] = epsilon(history.get(node, []), delta)
                history.setdefault(node, []).append(e.noise_multiplier)
                strictest[node] = delta
                if e.run_id == run_id:
                    after.setdefault(node, []).append((e.round, epsilon(history[node], delta)))
    except UsageError as err:
        return Replay(before, after, f"round.privacy of run {e.run_id} round {e.round} cannot be accounted: {err}")
    return Replay(before, after, "")
