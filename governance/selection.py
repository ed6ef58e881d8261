"""Seeded node selection that only draws nodes with valid consent, and can be recomputed.

The draw, written down so an auditor can redo it from the record alone:

1. ``eligible`` = sorted candidates whose consent check state is ``"valid"``.
2. ``k = min(len(eligible), max(min_nodes, int(len(eligible) * fraction)))``;
   fewer than ``min_nodes`` eligible raises ``SelectionError``.
3. each eligible node gets the rank ``SHA-256(canonical_bytes({"node": node, "round": round,
   "seed": seed}))`` (RFC 8785 JSON, so the bytes are the same in any language).
4. ``selected`` = the ``k`` nodes with the smallest ranks (ties, which need a SHA-256
   collision, broken by node id), sorted by node id.

Hash ranking, not a language's PRNG, so that a verifier in any language can redo it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from governance.consent import NO_CONSENT, VALID, ConsentCheck
from governance.errors import PolicyError, UsageError, VerificationError
from governance.ledger.canonical import canonical_bytes

SELECTION_FORMAT = "fedgov.selection.v1"


class SelectionUsageError(UsageError):
    """Selection parameters or a selection record that cannot be used as given."""


class SelectionError(PolicyError):
    """Too few nodes have valid consent to run the round."""


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
        return {
            "format": SELECTION_FORMAT,
            "round": self.round,
            "seed": self.seed,
            "fraction": self.fraction,
            "min_nodes": self.min_nodes,
            "candidates": list(self.candidates),
            "checks": {node: dict(check) for node, check in sorted(self.checks.items())},
            "excluded": dict(sorted(self.excluded.items())),
            "selected": list(self.selected),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SelectionRecord:
        if data.get("format") != SELECTION_FORMAT:
            raise SelectionUsageError(f"not a selection record: expected format {SELECTION_FORMAT!r}")
        try:
            return cls(
                round=data["round"],
                seed=data["seed"],
                fraction=data["fraction"],
                min_nodes=data["min_nodes"],
                candidates=list(data["candidates"]),
                checks={node: dict(check) for node, check in data["checks"].items()},
                excluded=dict(data["excluded"]),
                selected=list(data["selected"]),
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise SelectionUsageError(f"malformed selection record: {e}") from e


def _validate_parameters(fraction: float, min_nodes: int, seed: int, server_round: int) -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
        raise SelectionUsageError(f"fraction must be in (0, 1], got {fraction!r}")
    for name, value, low in (("min_nodes", min_nodes, 1), ("server_round", server_round, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise SelectionUsageError(f"{name} must be an int >= {low}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SelectionUsageError(f"seed must be an int, got {seed!r}")


def _sample_size(eligible: int, fraction: float, min_nodes: int) -> int:
    return min(eligible, max(min_nodes, int(eligible * fraction)))


def draw(eligible: Sequence[str], k: int, seed: int, server_round: int) -> list[str]:
    """The documented seeded draw of ``k`` of ``eligible`` (steps 3 and 4 above)."""

    def rank(node: str) -> tuple[bytes, str]:
        key = canonical_bytes({"node": node, "round": server_round, "seed": seed})
        return hashlib.sha256(key).digest(), node

    return sorted(sorted(eligible, key=rank)[:k])


def _summarise_exclusions(excluded: Mapping[str, str]) -> str:
    counts = Counter(excluded.values())
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())) or "none"


def select_nodes(
    candidates: Sequence[str],
    checks: Mapping[str, ConsentCheck],
    fraction: float,
    min_nodes: int,
    seed: int,
    server_round: int,
) -> SelectionRecord:
    """Draw this round's nodes from those with valid consent (procedure in the module docstring).

    A candidate with no entry in ``checks`` is excluded as ``no-consent``: a
    missing check never lets a node through.
    """
    _validate_parameters(fraction, min_nodes, seed, server_round)
    ordered = sorted(candidates)
    if len(set(ordered)) != len(ordered):
        raise SelectionUsageError("candidate node ids must be unique")
    recorded: dict[str, dict[str, str | None]] = {}
    excluded: dict[str, str] = {}
    for node in ordered:
        check = checks.get(node)
        if check is None:
            recorded[node] = {"state": NO_CONSENT, "record_id": None}
        elif check.principal != node:
            raise SelectionUsageError(
                f"consent check for node {node!r} is about principal {check.principal!r}"
            )
        else:
            recorded[node] = {"state": check.state, "record_id": check.record_id}
        if recorded[node]["state"] != VALID:
            excluded[node] = str(recorded[node]["state"])
    eligible = [node for node in ordered if node not in excluded]
    if len(eligible) < min_nodes:
        raise SelectionError(
            f"round {server_round}: {len(eligible)} of {len(ordered)} candidate nodes have valid "
            f"consent, {min_nodes} needed; excluded: {_summarise_exclusions(excluded)}"
        )
    k = _sample_size(len(eligible), fraction, min_nodes)
    return SelectionRecord(
        round=server_round,
        seed=seed,
        fraction=fraction,
        min_nodes=min_nodes,
        candidates=ordered,
        checks=recorded,
        excluded=excluded,
        selected=draw(eligible, k, seed, server_round),
    )


def recompute(record_dict: Mapping[str, Any]) -> list[str]:
    """Redo the draw from a stored record's inputs alone (candidates, checks, parameters)."""
    record = SelectionRecord.from_dict(record_dict)
    _validate_parameters(record.fraction, record.min_nodes, record.seed, record.round)
    eligible = []
    for node in sorted(record.candidates):
        check = record.checks.get(node)
        if check is not None and check.get("state") == VALID:
            eligible.append(node)
    if len(eligible) < record.min_nodes:
        raise SelectionMismatchError(
            f"round {record.round}: record lists {len(eligible)} eligible nodes, "
            f"fewer than min_nodes={record.min_nodes}, so no draw could have happened"
        )
    k = _sample_size(len(eligible), record.fraction, record.min_nodes)
    return draw(eligible, k, record.seed, record.round)


def verify_selection(record_dict: Mapping[str, Any]) -> None:
    """Raise ``SelectionMismatchError`` unless ``excluded`` and ``selected`` follow from the inputs."""
    expected = recompute(record_dict)
    record = SelectionRecord.from_dict(record_dict)
    expected_excluded = {
        node: str(record.checks.get(node, {}).get("state", NO_CONSENT))
        for node in record.candidates
        if record.checks.get(node, {}).get("state") != VALID
    }
    if record.excluded != expected_excluded:
        raise SelectionMismatchError(
            f"round {record.round}: recorded exclusions {record.excluded} "
            f"but the consent checks give {expected_excluded}"
        )
    recorded = list(record_dict.get("selected", []))
    if recorded != expected:
        raise SelectionMismatchError(
            f"round {record_dict.get('round')}: recorded selection {recorded} "
            f"but the record's inputs give {expected}"
        )
