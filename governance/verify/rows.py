"""The row verifier (docs/ledger-format.md §6): entry and checkpoint rows as plain values, checked.

Needs no secret and trusts only pinned keys. Recomputes every leaf from its row and the
whole tree, checks each checkpoint's signature, its consistency with the one before and
its root against the recomputed tree. Raises VerificationError naming the first failure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from binascii import b2a_base64
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from governance.verify.canonical import MAX_SAFE_INTEGER
from governance.verify.checkpoint import Checkpoint, CheckpointError, VerifierKey, verify_trusted
from governance.verify.errors import UsageError, VerificationError
from governance.verify.leaf import LeafEncoder, as_bytes
from governance.verify.merkle import Frontier, ProofError, verify_consistency

# (seq, entry_type, timestamp, run_id, round, node_id, model_hash, config_hash, key_id, ciphertext, leaf_hash)
EntryRow = Sequence[Any]
Nodes = list[tuple[int, int, bytes]]  # completed tree nodes as (level, index, hash)
VERIFY_CHUNK = 65536  # rows hashed per batch: big enough that per-batch tree work vanishes
NO_CHECKPOINT = ("no signed checkpoint: nothing in this ledger is covered by a signature (a fedgov ledger is signed "
                 "from its creation on, so its checkpoints were removed)")


@dataclass(frozen=True)
class KnownCheckpoint:
    """A checkpoint the verifier holds from outside the ledger (saved earlier, or from a witness)."""

    source: str  # where it came from, for messages
    checkpoint: Checkpoint
    text: str  # the note as read, to tell which trusted key signed it


@dataclass(frozen=True)
class VerifyReport:
    """What a successful verification covered."""

    entries: int
    checkpoints: int
    root_hex: str
    signed_size: int  # entries covered by the largest signed tree (a stored or a known checkpoint)
    known: tuple[int, ...] = ()  # tree sizes of the known checkpoints matched
    cache_nodes: int | None = None  # stored tree nodes recomputed (None: no cache, e.g. a bundle)

    @property
    def unsigned_tail(self) -> int:
        """Entries after the last signed tree: written, but not yet covered by a signature."""
        return self.entries - self.signed_size

    @property
    def signed(self) -> bool:
        return self.unsigned_tail == 0

    def to_dict(self) -> dict[str, Any]:
        return {"verified": True, "entries": self.entries, "checkpoints": self.checkpoints, "root": self.root_hex,
                "signed_size": self.signed_size, "unsigned_entries": self.unsigned_tail, "signed": self.signed,
                "known_checkpoints": list(self.known), "cache_nodes_checked": self.cache_nodes}


def ledger_origin(meta: dict[str, Any], source: str) -> str:
    """The checkpoint origin a ledger's identity requires: `fedgov.ledger/<ledger_id>` (§5, §6)."""
    ledger_id = meta.get("ledger_id")
    if not isinstance(ledger_id, str) or not ledger_id:
        raise VerificationError(f"{source} names no ledger_id")
    origin = f"fedgov.ledger/{ledger_id}"
    if meta.get("origin") != origin:
        raise VerificationError(f"{source}: origin {meta.get('origin')!r} is not {origin!r}, which its ledger_id "
                                "requires (meta edited)")
    return origin


def check_signed(text: str, trusted: Sequence[VerifierKey]) -> Checkpoint:
    """A note signed by a trusted key named like its origin, of a non-empty tree; CheckpointError otherwise."""
    cp = verify_trusted(text, trusted)
    if cp.size == 0:
        raise CheckpointError("it signs an empty tree (fedgov never does: its first checkpoint covers entry 0)")
    return cp


def checkpoint_row(row: dict[str, Any], trusted: Sequence[VerifierKey], origin: str) -> tuple[Checkpoint, list[bytes]]:
    """One checkpoint row on its own (§6 step 2): signed, of this ledger, its size, its proof's one text form.

    Returns the checkpoint and its consistency proof; VerificationError names the row.
    """
    label = f"checkpoint #{row['id']}"
    try:
        cp = check_signed(row["note"], trusted)
    except CheckpointError as err:
        raise VerificationError(f"{label}: bad signature: {err}") from err
    if cp.origin != origin:
        raise VerificationError(f"{label}: origin {cp.origin!r} is not this ledger's {origin!r}")
    if cp.size != row["tree_size"]:
        raise VerificationError(f"{label}: signed tree size {cp.size} differs from the row's {row['tree_size']}")
    try:  # the one text form of a stored proof: ["<b64>", "<b64>"], comma and space between
        proof = [base64.b64decode(p, validate=True) for p in json.loads(row["consistency_proof"])]
        if json.dumps([base64.b64encode(p).decode("ascii") for p in proof]) != row["consistency_proof"]:
            raise ValueError("not in its one text form")
    except (ValueError, TypeError, RecursionError, binascii.Error) as err:
        raise VerificationError(f"{label}: consistency_proof is not a JSON array of base64 hashes written "
                                f'["<b64>", "<b64>"] ({err})') from err
    return cp, proof


def check_consistent(label: str, previous_id: int, previous: Checkpoint, cp: Checkpoint, proof: list[bytes]) -> None:
    """A checkpoint after the first extends the one before it (RFC 9162 §2.1.4.2); VerificationError if not."""
    if cp.size < previous.size:
        raise VerificationError(f"{label}: tree size {cp.size} is smaller than the previous {previous.size}")
    try:
        verify_consistency(previous.size, cp.size, proof, previous.root, cp.root)
    except ProofError as err:
        raise VerificationError(f"{label}: not consistent with checkpoint #{previous_id} "
                                f"(fork or rewritten history): {err}") from err


def _signed_checkpoints(checkpoints: Sequence[dict[str, Any]], trusted: Sequence[VerifierKey],
                        origin: str) -> list[tuple[int, Checkpoint]]:
    """Step 1 of §6: each stored checkpoint signed, of this ledger, growing, consistent with the one before."""
    if not checkpoints:
        raise VerificationError(NO_CHECKPOINT)
    parsed: list[tuple[int, Checkpoint]] = []
    for expected_id, row in enumerate(checkpoints, start=1):
        if row["id"] != expected_id:
            raise VerificationError(f"checkpoint #{expected_id} is missing (found #{row['id']} in its place)")
        cp, proof = checkpoint_row(row, trusted, origin)
        if not parsed and proof:
            raise VerificationError(f"checkpoint #{row['id']}: the first checkpoint's consistency_proof must be []")
        if parsed:
            check_consistent(f"checkpoint #{row['id']}", parsed[-1][0], parsed[-1][1], cp, proof)
        parsed.append((row["id"], cp))
    return parsed


@dataclass(frozen=True)
class Target:
    """A signed tree size the recomputed root must match: a stored or a known checkpoint."""

    size: int
    root: bytes
    label: str
    known: bool


def signed_targets(checkpoints: Sequence[dict[str, Any]], trusted: Sequence[VerifierKey], origin: str,
                   known: Sequence[KnownCheckpoint]) -> tuple[int, list[Target]]:
    """Steps 0-2 of §6: the checkpoint rows and the known checkpoints checked, before any entry.

    Returns the number of checkpoints and every signed tree size with its root, smallest first.
    """
    parsed = _signed_checkpoints(checkpoints, trusted, origin)
    for item in known:
        if item.checkpoint.origin != origin:
            raise UsageError(f"known checkpoint {item.source} belongs to {item.checkpoint.origin!r}, not to this "
                             f"ledger {origin!r}")
    return len(parsed), sorted([Target(cp.size, cp.root, f"checkpoint #{cp_id}", False) for cp_id, cp in parsed]
                               + [Target(k.checkpoint.size, k.checkpoint.root, f"known checkpoint {k.source}", True)
                                  for k in known], key=lambda t: t.size)


def verify_rows(rows: Iterable[EntryRow], checkpoints: Sequence[dict[str, Any]], trusted: Sequence[VerifierKey],
                *, origin: str, known: Sequence[KnownCheckpoint] = (),
                on_nodes: Callable[[Nodes], None] | None = None, min_level: int = 1) -> VerifyReport:
    """Verify entry rows (in seq order) and checkpoint rows (in id order) against `trusted` keys (§6).

    `origin` is the one the ledger's identity requires; `known` are checkpoints held from
    outside, each of which the ledger must still contain. `on_nodes`, when given, is handed
    every completed subtree of level >= `min_level`, in order (for a check of stored nodes).
    """
    count, targets = signed_targets(checkpoints, trusted, origin, known)
    pending = iter(targets)
    target = next(pending, None)
    frontier, expected, it, encode_leaf = Frontier(), 0, iter(rows), LeafEncoder()

    def fold(leaves: Sequence[bytes]) -> None:
        nodes = frontier.extend(leaves, keep_nodes=on_nodes is not None, min_level=min_level)
        if on_nodes is not None:
            on_nodes(nodes)

    while chunk := list(islice(it, VERIFY_CHUNK)):
        leaves, failure = leaf_hashes(chunk, expected, encode_leaf)
        # Fold the good leaves in, checking each signed root as the tree reaches its size, so
        # the failure reported is the first one in ledger order.
        start, pos = frontier.size, 0
        expected += len(leaves)
        while target is not None and target.size <= expected:
            fold(leaves[pos:target.size - start])
            pos = max(pos, target.size - start)
            check_root(target, frontier.root())
            target = next(pending, None)
        fold(leaves[pos:])
        if failure is not None:
            raise failure
    check_nothing_cut(target, expected)
    return VerifyReport(expected, count, frontier.root().hex(), max(t.size for t in targets),
                        tuple(sorted(k.checkpoint.size for k in known)))


def check_nothing_cut(target: Target | None, entries: int) -> None:
    """Step 4 of §6: `target`, the first signed size the entries did not reach, means entries were cut."""
    if target is None:
        return
    if target.known:
        raise VerificationError(f"{target.label} covers {target.size} entries but the ledger holds only "
                                f"{entries}: the ledger was rolled back or truncated")
    raise VerificationError(f"{target.label} covers {target.size} entries but the ledger holds "
                            f"only {entries}: entries were removed (truncated tail)")


def leaf_hashes(chunk: Sequence[EntryRow], first_seq: int,
                encode_leaf: LeafEncoder) -> tuple[list[bytes], VerificationError | None]:
    """Recompute each row's leaf hash and compare it with the stored one.

    Returns the leaves up to the first bad row, and that row's error (or None). A plainly
    well-typed row whose parts `encode_leaf` has already made (its index fields and its
    timestamp, shared with an earlier row) is put together here, without a call per row:
    the same bytes as `encode_leaf` gives.
    """
    sha, b64, middles, tails = hashlib.sha256, b2a_base64, encode_leaf.middles, encode_leaf.tails
    leaves: list[bytes] = []
    append = leaves.append
    expected = first_seq
    if first_seq + len(chunk) > MAX_SAFE_INTEGER:  # seqs beyond I-JSON's range: each row checked on its own
        middles = {}
    for row in chunk:
        seq, round_, ciphertext = row[0], row[4], row[9]
        try:
            middle, tail = middles.get((row[7], row[1], row[8], row[6], row[5], round_, row[3])), tails.get(row[2])
        except TypeError:  # an unhashable field (a bundle's row may hold a list): not a well-typed row
            middle = None
        if (middle is not None and tail is not None and seq == expected and type(seq) is int
                and type(ciphertext) is bytes and (round_ is None or type(round_) is int)):  # True, 1.0 equal 1
            leaf = sha(b'\x00{"ciphertext":"%s%s%d%s' % (b64(ciphertext, newline=False), middle, seq, tail)).digest()
        elif seq != expected:
            return leaves, VerificationError(f"entry seq {expected} is missing (next stored entry is seq {seq})")
        else:
            try:
                leaf = sha(b"\x00" + encode_leaf(seq, row[2], row[1], row[3], row[4], row[5], row[6], row[7],
                                                 row[8], as_bytes(row[9]))).digest()
            except (TypeError, ValueError) as err:
                return leaves, VerificationError(f"entry seq {seq}: malformed row ({err})")
        if leaf != row[10]:
            return leaves, VerificationError(f"entry seq {seq}: stored fields do not hash to its recorded leaf "
                                             "hash (entry altered after it was appended)")
        append(leaf)
        expected += 1
    return leaves, None


def check_root(target: Target, root: bytes) -> None:
    """A signed root must be the root the entries give at its size; VerificationError naming both if not."""
    if root != target.root:
        why = "history rewritten" if target.known else "entries rewritten, or a forked checkpoint"
        raise VerificationError(f"{target.label} (tree size {target.size}): signed root {target.root.hex()} does not "
                                f"match the entries' root {root.hex()} ({why})")
