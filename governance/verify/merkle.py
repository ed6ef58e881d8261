"""RFC 9162 Merkle trees: leaf and node hashes, the root over leaves, and proof checks.

A tree is folded leaf by leaf into its frontier, the perfect subtrees covering it (O(log n)
state). Proofs are checked as RFC 9162 §2.1.3.2 and §2.1.4.2 write them; a failure raises.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from governance.verify.errors import VerificationError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(VerificationError):
    """An inclusion or consistency proof does not hold."""


def hash_leaf(data: bytes) -> bytes:
    """Leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """Interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class Frontier:
    """The perfect subtrees covering a tree's leaves, largest first, as (level, hash)."""

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        self.size = size
        self.levels = [lvl for lvl in range(size.bit_length() - 1, -1, -1) if size >> lvl & 1]
        if len(hashes) != len(self.levels):
            raise ValueError("frontier needs one hash per set bit of the size")
        self.hashes = list(hashes)

    def extend(self, leaf_hashes: Sequence[bytes], keep_nodes: bool = True,
               min_level: int = 1) -> list[tuple[int, int, bytes]]:
        """Add leaves; return the (level, index, hash) of each completed node of level >= `min_level`.

        The leaves are cut into aligned power-of-two runs, each reduced pairwise level by
        level: one SHA-256 per interior node. None are returned unless `keep_nodes`.
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
                    completed.extend([(level, (size >> level) + i, h) for i, h in enumerate(run)])
            self.levels.append(k)
            self.hashes.append(run[0])
            self.size += 1 << k
            pos += 1 << k
            self._merge(completed, keep_nodes, min_level)
        return completed

    def append_subtree(self, level: int, digest: bytes, min_level: int = 1) -> list[tuple[int, int, bytes]]:
        """Add the hash of a perfect subtree of 2^level leaves computed elsewhere (by another process).

        The tree's size must be a multiple of 2^level, so the subtree is aligned. Returns the
        nodes of level >= `min_level` it completes above it, as `extend` does.
        """
        if self.size % (1 << level):
            raise ValueError(f"a subtree of 2^{level} leaves does not start at a multiple of its size ({self.size})")
        self.levels.append(level)
        self.hashes.append(digest)
        self.size += 1 << level
        completed: list[tuple[int, int, bytes]] = []
        self._merge(completed, True, min_level)
        return completed

    def _merge(self, completed: list[tuple[int, int, bytes]], keep_nodes: bool, min_level: int) -> None:
        """Hash the last two subtrees together while they are the same size."""
        while len(self.levels) >= 2 and self.levels[-1] == self.levels[-2]:
            right, left = self.hashes.pop(), self.hashes.pop()
            self.levels.pop()
            level = self.levels.pop() + 1
            self.levels.append(level)
            self.hashes.append(hash_children(left, right))
            if keep_nodes and level >= min_level:
                completed.append((level, (self.size >> level) - 1, self.hashes[-1]))

    def root(self) -> bytes:
        """Root hash of the current tree (RFC 9162 MTH)."""
        return root_of(self.hashes)


def root_of(subtrees: Sequence[bytes]) -> bytes:
    """The root of a tree given by its perfect subtrees' hashes, largest first (RFC 9162 MTH).

    Hashed right to left, so the last two may also be the same size (as when an aligned
    subtree has just been added and not merged yet).
    """
    if not subtrees:
        return EMPTY_ROOT
    acc = subtrees[-1]
    for node in reversed(subtrees[:-1]):
        acc = hash_children(node, acc)
    return acc


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
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            while not fn & 1 and fn:
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
    path = [root1, *proof] if size1 & (size1 - 1) == 0 else list(proof)  # size1 a power of two: root1 is a node
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
            while not fn & 1 and fn:
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
