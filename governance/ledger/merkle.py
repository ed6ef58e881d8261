"""RFC 9162 proofs built from the stored tree nodes: the writer's half of the Merkle tree.

Proofs are built from stored hashes of complete (perfect, aligned) subtrees, so a proof at
any size touches O(log n) stored nodes and never rehashes the entries. Hashing, the
frontier and the proof checks are the verifier's (governance/verify/merkle.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from governance.verify.merkle import EMPTY_ROOT, Frontier, hash_children

# A node of the tree: (level, index) covers leaves [index * 2**level, (index + 1) * 2**level).
NodeKey = tuple[int, int]
NodeFetcher = Callable[[Sequence[NodeKey]], dict[NodeKey, bytes]]


def frontier_keys(size: int) -> list[NodeKey]:
    """Node keys of the perfect subtrees that make up a tree of `size` leaves (a Frontier's nodes)."""
    keys, start = [], 0
    for lvl in range(size.bit_length() - 1, -1, -1):
        if size >> lvl & 1:
            keys.append((lvl, start >> lvl))
            start += 1 << lvl
    return keys


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """Root of the tree over these leaf hashes (O(n))."""
    frontier = Frontier()
    frontier.extend(leaf_hashes, keep_nodes=False)
    return frontier.root()


def _subtree_hash(start: int, end: int, get: Callable[[NodeKey], bytes]) -> bytes:
    """MTH(D[start:end]) from stored perfect subtrees; `start` is aligned to the split."""
    n = end - start
    if n & (n - 1) == 0 and start % n == 0:
        return get((n.bit_length() - 1, start // n))
    k = _split(n)
    return hash_children(get((k.bit_length() - 1, start // k)), _subtree_hash(start + k, end, get))


def _path(m: int, start: int, end: int, get: Callable[[NodeKey], bytes]) -> list[bytes]:
    """RFC 9162 PATH(m, D[start:end])."""
    n = end - start
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return _path(m, start, start + k, get) + [_subtree_hash(start + k, end, get)]
    return _path(m - k, start + k, end, get) + [_subtree_hash(start, start + k, get)]


def _subproof(m: int, start: int, end: int, complete: bool, get: Callable[[NodeKey], bytes]) -> list[bytes]:
    """RFC 9162 SUBPROOF(m, D[start:end], b)."""
    n = end - start
    if m == n:
        return [] if complete else [_subtree_hash(start, end, get)]
    k = _split(n)
    if m <= k:
        return _subproof(m, start, start + k, complete, get) + [_subtree_hash(start + k, end, get)]
    return _subproof(m - k, start + k, end, False, get) + [_subtree_hash(start, start + k, get)]


def _with_batched_fetch(compute: Callable[[Callable[[NodeKey], bytes]], list[bytes]], fetch: NodeFetcher) -> list[bytes]:
    """Run `compute` twice: once to learn which nodes it reads, once with them fetched in one go."""
    wanted: list[NodeKey] = []

    def record(key: NodeKey) -> bytes:
        wanted.append(key)
        return EMPTY_ROOT

    compute(record)
    found = fetch(wanted)
    return compute(lambda key: found[key])


def inclusion_proof(index: int, size: int, fetch: NodeFetcher) -> list[bytes]:
    """Audit path for leaf `index` in a tree of `size` leaves, from stored nodes."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} outside tree of size {size}")
    return _with_batched_fetch(lambda get: _path(index, 0, size, get), fetch)


def consistency_proof(size1: int, size2: int, fetch: NodeFetcher) -> list[bytes]:
    """Consistency proof between tree sizes `size1` <= `size2`, from stored nodes."""
    if not 0 < size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to {size2}")
    return _with_batched_fetch(lambda get: _subproof(size1, 0, size2, True, get), fetch)


def root_from_nodes(size: int, fetch: NodeFetcher) -> bytes:
    """Root hash of a tree of `size` leaves from its stored frontier nodes."""
    if size == 0:
        return EMPTY_ROOT
    keys = frontier_keys(size)
    found = fetch(keys)
    return Frontier(size, [found[k] for k in keys]).root()


def leaf_hashes_fetcher(leaf_hashes: Sequence[bytes]) -> NodeFetcher:
    """A NodeFetcher over an in-memory list of leaves (for tests and small trees)."""
    def fetch(keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
        return {(lvl, idx): root_of(leaf_hashes[idx << lvl:(idx + 1) << lvl]) for lvl, idx in keys}
    return fetch
