"""Seeded node selection that only draws nodes with valid consent, and can be recomputed.

The draw is written down, and redone from the record alone, in governance/verify/selection.py;
this module runs it on live consent checks and refuses a round with too few eligible nodes.
Hash ranking, not a language's PRNG, so that a verifier in any language can redo it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from governance.consent import NO_CONSENT, VALID, ConsentCheck
from governance.errors import PolicyError
from governance.verify.selection import SelectionRecord, SelectionUsageError, draw, sample_size, validate_parameters


class SelectionError(PolicyError):
    """Too few nodes have valid consent to run the round."""


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
    """Draw this round's nodes from those with valid consent (procedure in governance/verify/selection.py).

    A candidate with no entry in ``checks`` is excluded as ``no-consent``: a
    missing check never lets a node through.
    """
    validate_parameters(fraction, min_nodes, seed, server_round)
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
    k = sample_size(len(eligible), fraction, min_nodes)
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
