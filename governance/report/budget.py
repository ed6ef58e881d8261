"""ε spent per node, recomputed from the recorded DP events alone: the report's one accountant.

Kept apart on purpose: when the privacy accounting of governance/privacy/ is the project's, this
module's `epsilon_per_round` is the single place the report switches to it.

Each round.privacy event is one Gaussian mechanism per participating node (the neighbouring
relation is adding or removing one node's update; no amplification by sampling is claimed, since
selection is deterministic and recorded). Rényi DP of order α of a Gaussian mechanism with noise
multiplier σ is α / (2σ²); a node's rounds compose by adding, and (ε, δ) is
min over α of  rdp(α) + log((α-1)/α) - (log δ + log α) / (α-1)  (Balle et al. 2020, the conversion
dp-accounting's RdpAccountant uses), floored at 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ORDERS = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [128, 256, 512, 1024])
ACCOUNTANT = "Rényi DP of the Gaussian mechanism per node, orders 1.1 to 1024"


@dataclass(frozen=True)
class DpEvent:
    """One round's mechanism as recorded: who took part, with which noise multiplier and δ."""

    round: int
    noise_multiplier: float
    delta: float
    participants: Sequence[str]


def epsilon(rdp_per_order: Sequence[float], delta: float) -> float:
    """(ε, δ)-DP from accumulated Rényi DP over ORDERS."""
    if not 0 < delta < 1:
        return math.inf
    best = math.inf
    for alpha, rdp in zip(ORDERS, rdp_per_order, strict=True):
        eps = rdp + math.log((alpha - 1) / alpha) - (math.log(delta) + math.log(alpha)) / (alpha - 1)
        best = min(best, eps)
    return max(0.0, best)


def epsilon_per_round(events: Sequence[DpEvent]) -> dict[str, list[tuple[int, float]]]:
    """node -> (round, ε spent after that round) for each round the node took part in, events in round order."""
    rdp: dict[str, list[float]] = {}
    out: dict[str, list[tuple[int, float]]] = {}
    for event in sorted(events, key=lambda e: e.round):
        if not event.noise_multiplier > 0:
            step = [math.inf] * len(ORDERS)  # no noise: no privacy
        else:
            step = [alpha / (2 * event.noise_multiplier ** 2) for alpha in ORDERS]
        for node in event.participants:
            acc = rdp.setdefault(node, [0.0] * len(ORDERS))
            rdp[node] = [a + s for a, s in zip(acc, step, strict=True)]
            out.setdefault(node, []).append((event.round, epsilon(rdp[node], event.delta)))
    return out
