"""RFC 9162 Merkle tree: hashing, proofs, and their verification.

Proofs are built from stored hashes of complete (perfect, aligned) subtrees, so a
proof at any size touches O(log n) stored nodes and never rehashes the entries.
Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 and raises on any failure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from governance.errors import VerificationError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# A node of the tree: (level, index) covers leaves [index * 2**level, (index + 1) * 2**level).
NodeKey = tuple[int, int]
NodeFetcher = Callable[[Sequence[NodeKey]], dict[NodeKey, bytes]]


class ProofError(VerificationError):
    """An inclusion or consistency proof does not hold."""


def hash_leaf(data: bytes) -> bytes:
    """Leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """Interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The perfect subtrees covering a tree's leaves, largest first: O(log n) state.

    Appending a leaf yields the interior nodes it completes, which a store keeps so
    later proofs need no rehashing.
    """

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        self.size = size
        self.levels = [lvl for lvl in range(size.bit_length() - 1, -1, -1) if size >> lvl & 1]
        if len(hashes) != len(self.levels):
            raise ValueError("frontier needs one hash per set bit of the size")
        self.hashes = list(hashes)

    @staticmethod
    def keys_for(size: int) -> list[NodeKey]:
        """Node keys of the perfect subtrees that make up a tree of `size` leaves."""
        keys, start = [], 0
        for lvl in range(size.bit_length() - 1, -1, -1):
            if size >> lvl & 1:
                keys.append((lvl, start >> lvl))
                start += 1 << lvl
        return keys

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf; return the (level, index, hash) of each interior node it completes."""
        self.levels.append(0)
        self.hashes.append(leaf_hash)
        self.size += 1
        completed = []
        while len(self.levels) >= 2 and self.levels[-1] == self.levels[-2]:
            right, left = self.hashes.pop(), self.hashes.pop()
            self.levels.pop()
            level = self.levels.pop() + 1
            node = hash_children(left, right)
            self.levels.append(level)
            self.hashes.append(node)
            completed.append((level, (self.size >> level) - 1, node))
        return completed

    def extend(self, leaf_hashes: Sequence[bytes], keep_nodes: bool = True,
               min_level: int = 1) -> list[tuple[int, int, bytes]]:
        """Add many leaves; same tree and nodes as `append` on each, hashed level by level.

        Returns the completed nodes of level >= `min_level` (none unless `keep_nodes`).

        The leaves are cut into aligned power-of-two runs, and each run is reduced pairwise
        in a comprehension: one SHA-256 per interior node and no per-leaf list juggling,
        which is what makes bulk append and full verification fast.
        """
        sha = hashlib.sha256
        completed: list[tuple[int, int, bytes]] = []
        pos, total = 0, len(leaf_hashes)
        while pos < total:
            size = self.size
            k = (total - pos).bit_length() - 1
            if size:
                k = min(k, (size & -size).bit_length() - 1)
            run = leaf_hashes[pos:pos + (1 << k)]
            level = 0
            while len(run) > 1:
                run = [sha(b"\x01" + a + b).digest() for a, b in zip(run[::2], run[1::2])]
                level += 1
                if keep_nodes and level >= min_level:
                    base = size >> level
                    completed.extend([(level, base + i, h) for i, h in enumerate(run)])
            self.levels.append(k)
            self.hashes.append(run[0])
            self.size += 1 << k
            pos += 1 << k
            while len(self.levels) >= 2 and self.levels[-1] == self.levels[-2]:
                right, left = self.hashes.pop(), self.hashes.pop()
                self.levels.pop()
                level = self.levels.pop() + 1
                node = hash_children(left, right)
                self.levels.append(level)
                self.hashes.append(node)
                if keep_nodes and level >= min_level:
                    completed.append((level, (self.size >> level) - 1, node))
        return completed

    def root(self) -> bytes:
        """Root hash of the current tree."""
        if not self.hashes:
            return EMPTY_ROOT
        acc = self.hashes[-1]
        for node in reversed(self.hashes[:-1]):
            acc = hash_children(node, acc)
        return acc


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """Root of the tree over these leaf hashes (reference, O(n))."""
    frontier = Frontier()
    for leaf in leaf_hashes:
        frontier.append(leaf)
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
    keys = Frontier.keys_for(size)
    found = fetch(keys)
    return Frontier(size, [found[k] for k in keys]).root()


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{name} is {len(value)} bytes, want {HASH_SIZE}")


def verify_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Check an inclusion proof (RFC 9162 §2.1.3.2); raise ProofError if it fails."""
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root", root)
    for i, p in enumerate(proof):
        _check_hash(f"proof[{i}]", p)
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside tree size {size}")
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is shorter than the tree is deep")
    if r != root:
        raise ProofError(f"computed root {r.hex()} != expected root {root.hex()}")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check a consistency proof (RFC 9162 §2.1.4.2); raise ProofError if it fails.

    A proof from size 0 is rejected: it proves nothing (the vectors' strict reading).
    """
    if size1 == 0:
        raise ProofError("a consistency proof from an empty tree proves nothing")
    if size2 < size1:
        raise ProofError(f"size2 {size2} is smaller than size1 {size1}")
    if size1 == size2:
        if proof:
            raise ProofError("sizes are equal but the proof is not empty")
        if root1 != root2:
            raise ProofError("sizes are equal but the roots differ")
        return
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    if not proof:
        raise ProofError("empty consistency proof")
    for i, p in enumerate(proof):
        _check_hash(f"proof[{i}]", p)
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: root1 is the first node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != root1:
        raise ProofError(f"proof gives old root {fr.hex()}, checkpoint has {root1.hex()}")
    if sr != root2:
        raise ProofError(f"proof gives new root {sr.hex()}, checkpoint has {root2.hex()}")


def leaf_hashes_fetcher(leaf_hashes: Sequence[bytes]) -> NodeFetcher:
    """A NodeFetcher over an in-memory list of leaves (for tests and small trees)."""
    def fetch(keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
        return {(lvl, idx): root_of(leaf_hashes[idx << lvl:(idx + 1) << lvl]) for lvl, idx in keys}
    return fetch
