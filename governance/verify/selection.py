"""The seeded node draw, redone from a `round.selection` record alone.

1. ``eligible`` = sorted candidates whose consent check state is ``"valid"``.
2. ``k = min(len(eligible), max(min_nodes, int(len(eligible) * fraction)))``.
3. each eligible node gets the rank ``SHA-256(canonical_bytes({"node": node, "round": round,
   "seed": seed}))`` (RFC 8785 JSON, so the bytes are the same in any language).
4. ``selected`` = the ``k`` nodes with the smallest ranks (ties, which need a SHA-256
   collision, broken by node id), sorted by node id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from governance.verify.canonical import canonical_bytes
from governance.verify.errors import UsageError, VerificationError

SELECTION_FORMAT = "fedgov.selection.v1"
VALID, NO_CONSENT = "valid", "no-consent"  # the consent check states the draw reads (governance/consent.py)


class SelectionUsageError(UsageError):
    """Selection parameters or a selection record that cannot be used as given."""


class SelectionMismatchError(VerificationError):
    """A recorded selection that the record's own inputs do not reproduce."""


@dataclass(frozen=True)
class SelectionRecord:
    """Everything needed to redo one round's draw, and its result."""

    round: int
    seed: int
    fraction: float
    min_nodes: int
    candidates: list[str]
    checks: dict[str, dict[str, str | None]]
    excluded: dict[str, str]
    selected: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"format": SELECTION_FORMAT, "round": self.round, "seed": self.seed, "fraction": self.fraction,
                "min_nodes": self.min_nodes, "candidates": list(self.candidates),
                "checks": {node: dict(check) for node, check in sorted(self.checks.items())},
                "excluded": dict(sorted(self.excluded.items())), "selected": list(self.selected)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SelectionRecord:
        if data.get("format") != SELECTION_FORMAT:
            raise SelectionUsageError(f"not a selection record: expected format {SELECTION_FORMAT!r}")
        try:
            return cls(round=data["round"], seed=data["seed"], fraction=data["fraction"], min_nodes=data["min_nodes"],
                       candidates=list(data["candidates"]),
                       checks={node: dict(check) for node, check in data["checks"].items()},
                       excluded=dict(data["excluded"]), selected=list(data["selected"]))
        except (KeyError, TypeError, AttributeError) as e:
            raise SelectionUsageError(f"malformed selection record: {e}") from e


def validate_parameters(fraction: float, min_nodes: int, seed: int, server_round: int) -> None:
    """Raise SelectionUsageError unless 0 < fraction <= 1, min_nodes >= 1, round >= 0, all ints but fraction."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
        raise SelectionUsageError(f"fraction must be in (0, 1], got {fraction!r}")
    for name, value, low in (("min_nodes", min_nodes, 1), ("server_round", server_round, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise SelectionUsageError(f"{name} must be an int >= {low}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SelectionUsageError(f"seed must be an int, got {seed!r}")


def sample_size(eligible: int, fraction: float, min_nodes: int) -> int:
    """Step 2: how many of the eligible nodes are drawn."""
    return min(eligible, max(min_nodes, int(eligible * fraction)))


def draw(eligible: Sequence[str], k: int, seed: int, server_round: int) -> list[str]:
    """Steps 3 and 4: the seeded draw of ``k`` of ``eligible``."""

    def rank(node: str) -> tuple[bytes, str]:
        return hashlib.sha256(canonical_bytes({"node": node, "round": server_round, "seed": seed})).digest(), node

    return sorted(sorted(eligible, key=rank)[:k])


def recompute(record_dict: Mapping[str, Any]) -> list[str]:
    """Redo the draw from a stored record's inputs alone (candidates, checks, parameters)."""
    record = SelectionRecord.from_dict(record_dict)
    validate_parameters(record.fraction, record.min_nodes, record.seed, record.round)
    eligible = [node for node in sorted(record.candidates) if (record.checks.get(node) or {}).get("state") == VALID]
    if len(eligible) < record.min_nodes:
        raise SelectionMismatchError(f"round {record.round}: record lists {len(eligible)} eligible nodes, "
                                     f"fewer than min_nodes={record.min_nodes}, so no draw could have happened")
    return draw(eligible, sample_size(len(eligible), record.fraction, record.min_nodes), record.seed, record.round)


def verify_selection(record_dict: Mapping[str, Any]) -> None:
    """Raise ``SelectionMismatchError`` unless ``excluded`` and ``selected`` follow from the inputs."""
    expected = recompute(record_dict)
    record = SelectionRecord.from_dict(record_dict)
    expected_excluded = {node: str(record.checks.get(node, {}).get("state", NO_CONSENT))
                         for node in record.candidates if record.checks.get(node, {}).get("state") != VALID}
    if record.excluded != expected_excluded:
        raise SelectionMismatchError(f"round {record.round}: recorded exclusions {record.excluded} "
                                     f"but the consent checks give {expected_excluded}")
    recorded = list(record_dict.get("selected", []))
    if recorded != expected:
        raise SelectionMismatchError(f"round {record_dict.get('round')}: recorded selection {recorded} "
                                     f"but the record's inputs give {expected}")
