"""A stranger's recomputation of every node's epsilon from the recorded `round.privacy` events alone.

Written from docs/privacy.md, without fedgov's accountant: the RDP of one Gaussian release of
noise multiplier sigma at order a is a / (2 sigma^2); a node's RDP is the sum over the releases
it entered; epsilon at delta is the smallest, over the recorded orders, of dp-accounting's
conversion (Balle et al. 2020, Proposition 12; dp-accounting 0.6 `compute_epsilon`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def gaussian_rdp(order: float, sigma: float) -> float:
    return order / (2 * sigma**2)


def epsilon_from_rdp(orders: Sequence[float], rdp: Sequence[float], delta: float) -> float:
    best = math.inf
    for a, r in zip(orders, rdp, strict=True):
        if delta**2 + math.expm1(-r) > 0:
            eps = 0.0
        elif a > 1.01:
            eps = r + math.log1p(-1 / a) - math.log(delta * a) / (a - 1)
        else:
            eps = math.inf
        best = min(best, eps)
    return max(0.0, best)


def recompute(events: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Node -> epsilon, from `round.privacy` payloads in ledger order (each node at the smallest delta of its releases)."""
    rdp: dict[str, list[float]] = {}
    orders: dict[str, list[float]] = {}
    delta: dict[str, float] = {}
    for event in events:
        assert event["mechanism"] == "gaussian" and event["sample_size"] == len(event["participants"])
        for node in event["participants"]:
            if node in orders:
                assert orders[node] == list(event["orders"]), "orders changed between releases"
            orders[node] = list(event["orders"])
            steps = [gaussian_rdp(a, event["noise_multiplier"]) for a in event["orders"]]
            rdp[node] = [x + y for x, y in zip(rdp.get(node, [0.0] * len(steps)), steps, strict=True)]
            delta[node] = min(delta.get(node, event["delta"]), event["delta"])
    return {node: epsilon_from_rdp(orders[node], rdp[node], delta[node]) for node in rdp}
