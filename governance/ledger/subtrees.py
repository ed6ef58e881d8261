"""The row verifier cut into aligned subtrees, so that several processes can share its work.

The same checks as `verify_rows` (docs/ledger-format.md §6), in the same order, with the same
lines. A ledger of N entries is cut into ranges [start, end) that are aligned subtrees of its
tree: every range holds 2^k entries and starts at a multiple of 2^k (the last may hold fewer).
`verify_range` checks one range on its own, as `verify_rows` checks rows: seqs in order,
each leaf recomputed and compared with the stored one, the range's subtree hashed. It stops at
the range's first bad row and returns what the fold needs: the subtree, the range's own
frontier at each signed tree size inside it, its completed nodes, and that row's line.
`verify_ranges` then folds the ranges in seq order into one tree, checks every signed root at its
size, and raises the first failure in ledger order: a root is checked before any row after it,
and a failing range's rows are never folded past its first bad row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from governance.ledger.tree_cache import ExpectedNodes, add_nodes
from governance.verify.errors import VerificationError
from governance.verify.leaf import LeafEncoder
from governance.verify.merkle import Frontier, root_of
from governance.verify.rows import (EntryRow, KnownCheckpoint, Target, VerifyReport, check_nothing_cut, check_root,
                                    leaf_hashes)


@dataclass(frozen=True)
class Range:
    """Entries start <= seq < end, and the tree sizes in (start, end] a signed root may be checked at."""

    start: int
    end: int
    sizes: tuple[int, ...] = ()


@dataclass
class RangeResult:
    """What one range's check hands to the fold (plain values: it crosses a process boundary)."""

    start: int
    reached: int  # start + the good leaves before the first bad row (end when none is bad)
    subtrees: list[tuple[int, bytes]]  # the good leaves' perfect subtrees as (level, hash), largest first
    frontiers: dict[int, list[bytes]]  # tree size -> the range's subtree hashes covering [start, size)
    nodes: dict[int, tuple[int, list[bytes]]] = field(default_factory=dict)  # level -> (first idx, hashes)
    failure: str | None = None  # the first bad row's line


def split(size: int, parts: int, smallest: int) -> list[tuple[int, int]]:
    """Cut 0..size into aligned power-of-two ranges, about `parts` of them, none under `smallest` entries."""
    step = 1 << max(smallest.bit_length() - 1, (size // max(parts, 1)).bit_length() - 1, 0)
    return [(start, min(start + step, size)) for start in range(0, size, step)]


def verify_range(chunks: Iterable[Sequence[EntryRow]], task: Range, min_level: int,
                 next_seq: Callable[[int], Any]) -> RangeResult:
    """Check the rows of one range, in seq order (`chunks`: lists of rows with start <= seq < end).

    `next_seq(s)` gives the first stored seq >= s (or None), to name the entry after a gap
    at the range's end, as `verify_rows` names the next row it reads.
    """
    frontier, encode_leaf = Frontier(), LeafEncoder()
    nodes: dict[int, tuple[int, list[bytes]]] = {}
    frontiers: dict[int, list[bytes]] = {}
    sizes = iter(sorted({s for s in task.sizes if task.start < s <= task.end}))
    size = next(sizes, None)
    expected, failure = task.start, None

    def fold(leaves: Sequence[bytes]) -> None:
        for level, idx, digest in frontier.extend(leaves, min_level=min_level):
            nodes.setdefault(level, ((task.start >> level) + idx, []))[1].append(digest)

    for chunk in chunks:
        leaves, error = leaf_hashes(chunk, expected, encode_leaf)
        pos = 0
        while size is not None and size <= expected + len(leaves):
            fold(leaves[pos:size - expected])
            pos = size - expected
            frontiers[size] = list(frontier.hashes)
            size = next(sizes, None)
        fold(leaves[pos:])
        expected += len(leaves)
        if error is not None:
            failure = str(error)
            break
    if failure is None and expected < task.end:  # the range's last rows are missing
        failure = f"entry seq {expected} is missing (next stored entry is seq {next_seq(expected)})"
    return RangeResult(task.start, expected, list(zip(frontier.levels, frontier.hashes)), frontiers, nodes, failure)


def verify_ranges(results: Iterable[RangeResult], signed: tuple[int, list[Target]], *,
                  known: Sequence[KnownCheckpoint] = (), nodes: ExpectedNodes | None = None,
                  min_level: int = 1) -> VerifyReport:
    """Fold checked ranges, in seq order and covering 0..N, into the report `verify_rows` gives for the same rows.

    `signed` is `signed_targets` of the checkpoints, checked before any range was handed out (the
    ranges stop at those sizes). `nodes`, when given, collects every completed subtree of level >=
    `min_level` (for the cache check).
    """
    count, targets = signed
    pending = iter(targets)
    target = next(pending, None)
    frontier, expected = Frontier(), 0
    for result in results:
        if result.start != expected:
            raise ValueError(f"range starting at {result.start} folded after {expected} entries")
        while target is not None and target.size <= result.reached:
            check_root(target, root_of(frontier.hashes + result.frontiers[target.size]))
            target = next(pending, None)
        if nodes is not None:
            for level, (first, hashes) in result.nodes.items():
                column = nodes.setdefault(level, [])
                if first != len(column):
                    raise ValueError(f"nodes of level {level} from idx {first} folded after {len(column)}")
                column.extend(hashes)
        for level, digest in result.subtrees:
            completed = frontier.append_subtree(level, digest, min_level)
            if nodes is not None:
                add_nodes(nodes, completed)
        expected = result.reached
        if result.failure is not None:
            raise VerificationError(result.failure)
    check_nothing_cut(target, expected)
    return VerifyReport(expected, count, frontier.root().hex(), max(t.size for t in targets),
                        tuple(sorted(k.checkpoint.size for k in known)))
