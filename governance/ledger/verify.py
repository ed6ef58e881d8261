"""Independent verification of a ledger: needs no secret, trusts only a pinned public key.

Recomputes every leaf from the stored row and the whole tree, checks every checkpoint's
signature against the pinned key, its consistency proof against the previous one and
its root against the recomputed tree. Raises VerificationError naming the first failure.
Apart from reading rows it uses only the standard library and `cryptography`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from governance.errors import UsageError, VerificationError
from governance.ledger import merkle
from governance.ledger.checkpoint import Checkpoint, CheckpointError, VerifierKey, verify_checkpoint
from governance.ledger.entry import LeafEncoder

# (seq, entry_type, timestamp, run_id, round, node_id, model_hash, config_hash, key_id, ciphertext, leaf_hash)
EntryRow = Sequence[Any]
VERIFY_CHUNK = 65536  # rows hashed per batch: big enough that per-batch tree work vanishes


@dataclass(frozen=True)
class VerifyReport:
    """What a successful verification covered."""

    entries: int
    checkpoints: int
    root_hex: str
    unsigned_tail: int  # entries after the last checkpoint, not yet covered by a signature


def load_trusted_keys(path: Path) -> list[VerifierKey]:
    """Read a trust file: one signed-note verifier key per line, `#` comments allowed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise UsageError(f"no trusted key file at {path}: pass --trusted-key") from err
    return parse_trusted_keys(text, str(path))


def parse_trusted_keys(text: str, source: str) -> list[VerifierKey]:
    """Verifier keys from trust-file text; `source` names it in errors."""
    keys = [VerifierKey.from_text(line) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not keys:
        raise UsageError(f"{source} names no trusted key")
    return keys


def _check_signed(text: str, trusted: Sequence[VerifierKey]) -> Checkpoint:
    errors = []
    for key in trusted:
        try:
            return verify_checkpoint(text, key, origin=key.name)
        except CheckpointError as err:
            errors.append(str(err))
    raise CheckpointError("; ".join(errors))


def verify_rows(rows: Iterable[EntryRow], checkpoints: Sequence[dict[str, Any]],
                trusted: Sequence[VerifierKey]) -> VerifyReport:
    """Verify entry rows (in seq order) and checkpoint rows (in id order) against `trusted` keys."""
    parsed: list[tuple[int, Checkpoint]] = []
    previous: Checkpoint | None = None
    for expected_id, row in enumerate(checkpoints, start=1):
        label = f"checkpoint #{row['id']}"
        if row["id"] != expected_id:
            raise VerificationError(f"checkpoint #{expected_id} is missing (found #{row['id']} in its place)")
        try:
            cp = _check_signed(row["note"], trusted)
        except CheckpointError as err:
            raise VerificationError(f"{label}: bad signature: {err}") from err
        if cp.size != row["tree_size"]:
            raise VerificationError(f"{label}: signed tree size {cp.size} differs from the row's {row['tree_size']}")
        if previous is not None:
            if cp.size < previous.size:
                raise VerificationError(f"{label}: tree size {cp.size} is smaller than the previous {previous.size}")
            try:
                proof = [base64.b64decode(p, validate=True) for p in json.loads(row["consistency_proof"])]
                merkle.verify_consistency(previous.size, cp.size, proof, previous.root, cp.root)
            except (ValueError, binascii.Error, merkle.ProofError) as err:
                raise VerificationError(f"{label}: not consistent with checkpoint #{row['id'] - 1} "
                                        f"(fork or rewritten history): {err}") from err
        parsed.append((row["id"], cp))
        previous = cp

    pending = iter(parsed)
    next_cp = next(pending, None)
    frontier = merkle.Frontier()
    expected = 0
    it = iter(rows)
    encode_leaf = LeafEncoder()
    while True:
        chunk = list(islice(it, VERIFY_CHUNK))
        if not chunk:
            break
        leaves, failure = _leaf_hashes(chunk, expected, encode_leaf)
        # Fold the good leaves in, checking each checkpoint as the tree reaches its size, so
        # the failure reported is the first one in ledger order.
        start, pos = frontier.size, 0
        expected += len(leaves)
        while next_cp is not None and next_cp[1].size <= expected:
            cut = next_cp[1].size - start
            frontier.extend(leaves[pos:cut], keep_nodes=False)
            pos = cut
            _check_root(next_cp, frontier)
            next_cp = next(pending, None)
        frontier.extend(leaves[pos:], keep_nodes=False)
        if failure is not None:
            raise failure
    if next_cp is not None:
        raise VerificationError(f"checkpoint #{next_cp[0]} covers {next_cp[1].size} entries but the ledger holds "
                                f"only {expected}: entries were removed (truncated tail)")
    last_size = parsed[-1][1].size if parsed else 0
    return VerifyReport(expected, len(parsed), frontier.root().hex(), expected - last_size)


def _leaf_hashes(chunk: Sequence[EntryRow], first_seq: int, encode_leaf: LeafEncoder) -> tuple[list[bytes], VerificationError | None]:
    """Recompute each row's leaf hash and compare it with the stored one.

    Returns the leaves up to the first bad row, and that row's error (or None).
    """
    sha = hashlib.sha256
    leaves: list[bytes] = []
    append = leaves.append
    expected = first_seq
    for row in chunk:
        seq = row[0]
        if seq != expected:
            return leaves, VerificationError(f"entry seq {expected} is missing (next stored entry is seq {seq})")
        try:
            leaf = sha(b"\x00" + encode_leaf(seq, row[2], row[1], row[3], row[4], row[5], row[6], row[7],
                                             row[8], bytes(row[9]))).digest()
        except (TypeError, ValueError) as err:
            return leaves, VerificationError(f"entry seq {seq}: malformed row ({err})")
        if leaf != row[10]:
            return leaves, VerificationError(f"entry seq {seq}: stored fields do not hash to its recorded leaf "
                                             "hash (entry altered after it was appended)")
        append(leaf)
        expected += 1
    return leaves, None


def _check_root(item: tuple[int, Checkpoint], frontier: merkle.Frontier) -> None:
    cp_id, cp = item
    root = frontier.root()
    if root != cp.root:
        raise VerificationError(f"checkpoint #{cp_id} (tree size {cp.size}): signed root {cp.root.hex()} does not "
                                f"match the entries' root {root.hex()} (entries rewritten, or a forked checkpoint)")


def verify_ledger(ws: Any, trusted: Sequence[VerifierKey] | None = None) -> VerifyReport:
    """Verify the ledger of a Workspace, trusting `trusted` or the workspace trust file; no secret needed."""
    from sqlalchemy.exc import SQLAlchemyError

    from governance.ledger.store import LedgerStore

    keys = list(trusted) if trusted else load_trusted_keys(ws.trust_path)
    store = LedgerStore.open(ws.db_url)
    try:
        with store.read() as conn:
            checkpoints = store.checkpoints(conn)
            return verify_rows(store.iter_entries(conn), checkpoints, keys)
    except (SQLAlchemyError, store.engine.dialect.loaded_dbapi.Error) as err:
        raise VerificationError(f"a stored row cannot be read as the schema defines it (tampered): "
                                f"{type(err).__name__}") from err
    finally:
        store.close()


def verify_bundle(path: Path, trusted: Sequence[VerifierKey] | None = None) -> VerifyReport:
    """Verify an offline evidence bundle (`fedgov audit export`): the checks of `verify_rows`, from files.

    Trusts `trusted`, else the key file shipped in the bundle (whose worth is only as good
    as the channel the bundle came by). After the signed checks, every file's SHA-256 must
    match the manifest, so a change to an unsigned field (e.g. a checkpoint's `created`) is
    named too.
    """
    from governance.ledger.bundle import TRUST_FILE, BundleError, BundleReader

    reader = BundleReader(path)
    shipped = reader.read_text(TRUST_FILE)
    if trusted:
        keys = list(trusted)
    else:
        try:
            keys = parse_trusted_keys(shipped, f"bundle file {TRUST_FILE}")
        except CheckpointError as err:
            raise BundleError(f"{TRUST_FILE}: {err}") from err
    report = verify_rows(reader.entries(), reader.checkpoints(), keys)
    reader.check_manifest()
    return report
