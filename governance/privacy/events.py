"""The `round.privacy` entry: one DP release, with everything needed to recompute every node's budget.

Payload (RFC 8785 JSON, run scope, operator-readable; docs/privacy.md):
  {"dp": "server-fixed"|"client-fixed", "mechanism": "gaussian", "noise_multiplier": s,
   "clipping_norm": C, "delta": d, "accountant": "...", "orders": [...], "neighboring": "...",
   "population": N, "selected": m, "sample_size": k, "amplification": "none claimed: ...",
   "participants": ["sim-0000", ...], "epsilon_after": {node: e}, "caps": {node: cap}}
`sample_size` is the number of updates averaged, which the noise was calibrated to
(stdev = s * C / k), so each participant's release has noise multiplier s. `epsilon_after`
is what the coordinator computed; a budget is always recomputed from the events, never read
from it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from governance.errors import UsageError
from governance.privacy.accounting import NEIGHBORING, ORDERS, accountant_name

MECHANISM = "gaussian"
AMPLIFICATION = "none claimed: selection is deterministic and recorded"


@dataclass(frozen=True)
class Release:
    """One round's noised aggregate, as `round.privacy` records it."""

    run_id: str
    round: int
    dp: str
    noise_multiplier: float
    clipping_norm: float
    delta: float
    population: int
    selected: int
    participants: tuple[str, ...]
    caps: Mapping[str, float]

    def payload(self, epsilon_after: Mapping[str, float]) -> dict[str, Any]:
        """The `round.privacy` payload of this release."""
        return {"dp": self.dp, "mechanism": MECHANISM, "noise_multiplier": self.noise_multiplier,
                "clipping_norm": self.clipping_norm, "delta": self.delta, "accountant": accountant_name(),
                "orders": list(ORDERS), "neighboring": NEIGHBORING, "population": self.population,
                "selected": self.selected, "sample_size": len(self.participants), "amplification": AMPLIFICATION,
                "participants": sorted(self.participants), "epsilon_after": dict(sorted(epsilon_after.items())),
                "caps": dict(sorted(self.caps.items()))}

    @classmethod
    def from_payload(cls, run_id: str, server_round: int, payload: Mapping[str, Any]) -> "Release":
        """Parse a recorded release; one clear line when it cannot be accounted."""
        try:
            sigma, delta = payload["noise_multiplier"], payload["delta"]
            participants = tuple(payload["participants"])
            if payload["mechanism"] != MECHANISM or payload["sample_size"] != len(participants):
                raise ValueError("not a Gaussian release over its participants")
            if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                       for v in (sigma, delta, payload["clipping_norm"])):
                raise ValueError("a parameter is not a finite number")
            return cls(run_id, server_round, str(payload["dp"]), float(sigma), float(payload["clipping_norm"]),
                       float(delta), int(payload["population"]), int(payload["selected"]),
                       tuple(str(p) for p in participants), dict(payload.get("caps") or {}))
        except (KeyError, TypeError, ValueError, OverflowError) as err:
            raise UsageError(f"round.privacy of run {run_id} round {server_round} cannot be accounted: {err}") \
                from None


def releases_by_node(releases: Iterable[Release]) -> dict[str, list[Release]]:
    """Node -> the releases its update entered, in the order given (the ledger's)."""
    by_node: dict[str, list[Release]] = defaultdict(list)
    for release in releases:
        for node in release.participants:
            by_node[node].append(release)
    return dict(by_node)


def noise_multipliers(releases: Sequence[Release]) -> list[float]:
    """Each release's noise multiplier: what the accountant composes."""
    return [r.noise_multiplier for r in releases]
