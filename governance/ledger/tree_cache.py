"""The stored tree nodes are a cache for fast proofs: compare them with the nodes the leaves give.

Verification recomputes every complete subtree from the entries; a stored node that
differs, is missing, or should not exist is named here. A corrupted cache does not make a
genuine ledger's entries false, but it makes proofs and the next checkpoint wrong, so
`fedgov audit verify` fails on it and `fedgov audit repair-cache` rebuilds it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import groupby, islice
from operator import itemgetter

from governance.verify.leaf import LeafEncoder
from governance.verify.merkle import Frontier
from governance.verify.rows import VERIFY_CHUNK, EntryRow, leaf_hashes

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
    """Collect nodes as `Frontier.extend` completes them (each level in idx order)."""
    for level, idx, digest in completed:
        column = expected.setdefault(level, [])
        if idx != len(column):
            raise ValueError(f"node (level {level}, idx {idx}) completed out of order")
        column.append(digest)


def recompute_tree(rows: Iterable[EntryRow], min_level: int) -> tuple[int, ExpectedNodes]:
    """Every complete subtree of level >= `min_level` from the entries themselves (for `repair-cache`).

    Each row's leaf hash is recomputed and must equal the stored one: the cache can be
    rebuilt, an altered entry cannot be repaired.
    """
    frontier = Frontier()
    nodes: ExpectedNodes = {}
    encode_leaf = LeafEncoder()
    it = iter(rows)
    while chunk := list(islice(it, VERIFY_CHUNK)):
        leaves, failure = leaf_hashes(chunk, frontier.size, encode_leaf)
        add_nodes(nodes, frontier.extend(leaves, min_level=min_level))
        if failure is not None:
            raise failure
    return frontier.size, nodes


def compare(expected: ExpectedNodes, stored: Iterable[tuple[int, int, bytes]], min_level: int) -> CacheDiff:
    """Compare stored (level, idx, hash) rows, ordered by level then idx, with the expected nodes.

    A level whose rows are exactly the expected ones (the usual case) is compared as two
    lists, in C; only a level that differs is walked row by row to name what differs.
    """
    diff = CacheDiff()
    compared: set[int] = set()
    for level, group in groupby(stored, key=itemgetter(0)):
        rows = list(group)
        diff.checked += len(rows)
        column = expected.get(level) if type(level) is int and level >= min_level else None
        if column is not None:
            compared.add(level)
            if [row[1] for row in rows] == list(range(len(column))) and [row[2] for row in rows] == column:
                continue
        _name_differences(rows, column or [], diff)
    for level, column in expected.items():
        if level not in compared:
            diff.missing.extend((level, i) for i in range(len(column)))
    return diff


def _name_differences(rows: list[tuple], column: list[bytes], diff: CacheDiff) -> None:
    """One level's stored rows against its expected hashes, row by row."""
    following = 0  # the idx the next stored row should have
    level = rows[0][0]
    for _, idx, digest in rows:
        if type(level) is not int or type(idx) is not int or not 0 <= idx < len(column):
            diff.extra.append((level, idx))  # off the tree, or a row of the wrong types: not a node
            continue
        diff.missing.extend((level, i) for i in range(following, idx))
        following = idx + 1
        if not isinstance(digest, (bytes, memoryview)) or bytes(digest) != column[idx]:
            diff.altered.append((level, idx))
    diff.missing.extend((level, i) for i in range(following, len(column)))


def repair_rows(expected: ExpectedNodes, diff: CacheDiff) -> tuple[list[tuple[int, int]], list[tuple[int, int, bytes]]]:
    """What to delete and what to insert so the stored nodes equal the expected ones."""
    delete = sorted(diff.altered + diff.extra, key=node_order)
    insert = [(lv, ix, expected[lv][ix]) for lv, ix in sorted(diff.altered + diff.missing, key=node_order)]
    return delete, insert
