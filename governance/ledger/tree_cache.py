"""The stored tree nodes are a cache for fast proofs: compare them with the nodes the leaves give.

Verification recomputes every complete subtree from the entries; a stored node that
differs, is missing, or should not exist is named here. A corrupted cache does not make a
genuine ledger's entries false, but it makes proofs and the next checkpoint wrong, so
`fedgov audit verify` fails on it and `fedgov audit repair-cache` rebuilds it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

NAMED = 5  # nodes named in one line; the counts cover the rest

ExpectedNodes = dict[int, list[bytes]]  # level -> hash of node idx 0, 1, ... at that level


@dataclass
class CacheDiff:
    """How the stored nodes differ from the recomputed ones, each as (level, idx)."""

    altered: list[tuple[int, int]] = field(default_factory=list)
    missing: list[tuple[int, int]] = field(default_factory=list)
    extra: list[tuple[int, int]] = field(default_factory=list)
    checked: int = 0  # stored nodes read

    def __bool__(self) -> bool:
        return bool(self.altered or self.missing or self.extra)

    def describe(self) -> str:
        """One line: counts, then the first few nodes named."""
        parts = [f"{len(v)} {k}" for k, v in (("altered", self.altered), ("missing", self.missing),
                                               ("extra", self.extra)) if v]
        named = sorted(self.altered + self.missing + self.extra, key=node_order)[:NAMED]
        return (f"{', '.join(parts)} cached tree node(s) differ from the entries' hashes "
                f"({', '.join(f'level {lv} idx {ix}' for lv, ix in named)}"
                f"{', …' if len(self.altered) + len(self.missing) + len(self.extra) > NAMED else ''})")


def node_order(key: tuple) -> tuple:
    """Sort key for (level, idx) pairs, also when a tampered row holds other types."""
    level, idx = key
    if type(level) is int and type(idx) is int:
        return (0, level, idx, "")
    return (1, 0, 0, repr(key))


def add_nodes(expected: ExpectedNodes, completed: Iterable[tuple[int, int, bytes]]) -> None:
    """Collect nodes as `merkle.Frontier.extend` completes them (each level in idx order)."""
    for level, idx, digest in completed:
        column = expected.setdefault(level, [])
        if idx != len(column):
            raise ValueError(f"node (level {level}, idx {idx}) completed out of order")
        column.append(digest)


def compare(expected: ExpectedNodes, stored: Iterable[tuple[int, int, bytes]], min_level: int) -> CacheDiff:
    """Compare stored (level, idx, hash) rows, ordered by level then idx, with the expected nodes."""
    diff = CacheDiff()
    seen: dict[int, int] = {}  # level -> next idx expected in the stored order
    for level, idx, digest in stored:
        diff.checked += 1
        if type(level) is not int or type(idx) is not int:
            diff.extra.append((level, idx))  # a row of the wrong types: whatever it is, it is not a node
            continue
        column = expected.get(level, []) if level >= min_level else []
        if idx < 0 or idx >= len(column):
            diff.extra.append((level, idx))
            continue
        nxt = seen.get(level, 0)
        diff.missing.extend((level, i) for i in range(nxt, idx))
        seen[level] = idx + 1
        if not isinstance(digest, (bytes, memoryview)) or bytes(digest) != column[idx]:
            diff.altered.append((level, idx))
    for level, column in expected.items():
        diff.missing.extend((level, i) for i in range(seen.get(level, 0), len(column)))
    return diff


def repair_rows(expected: ExpectedNodes, diff: CacheDiff) -> tuple[list[tuple[int, int]], list[tuple[int, int, bytes]]]:
    """What to delete and what to insert so the stored nodes equal the expected ones."""
    delete = sorted(diff.altered + diff.extra, key=node_order)
    insert = [(lv, ix, expected[lv][ix]) for lv, ix in sorted(diff.altered + diff.missing, key=node_order)]
    return delete, insert
