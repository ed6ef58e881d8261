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
from governance.ledger.checkpoint import Checkpoint, CheckpointError, VerifierKey, verify_trusted
from governance.ledger.entry import LeafEncoder, as_bytes
from governance.ledger.tree_cache import ExpectedNodes, add_nodes, compare

# (seq, entry_type, timestamp, run_id, round, node_id, model_hash, config_hash, key_id, ciphertext, leaf_hash)
EntryRow = Sequence[Any]
VERIFY_CHUNK = 65536  # rows hashed per batch: big enough that per-batch tree work vanishes


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


def load_trusted_keys(path: Path) -> list[VerifierKey]:
    """Read a trust file: one signed-note verifier key per line, `#` comments allowed."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as err:
        raise UsageError(f"no trusted key file at {path}: pass --trusted-key") from err
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read trusted key file {path}: {getattr(err, 'strerror', None) or err}") from err
    return parse_trusted_keys(text, str(path))


def parse_trusted_keys(text: str, source: str) -> list[VerifierKey]:
    """Verifier keys from trust-file text (§5: split on LF, trim, skip blanks and `#`); `source` names it in errors."""
    lines = (raw.strip(" \t\r") for raw in text.split("\n"))
    keys = [VerifierKey.from_text(line) for line in lines if line and not line.startswith("#")]
    if not keys:
        raise UsageError(f"{source} names no trusted key")
    return keys


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


def _check_signed(text: str, trusted: Sequence[VerifierKey]) -> Checkpoint:
    cp = verify_trusted(text, trusted)
    if cp.size == 0:
        raise CheckpointError("it signs an empty tree (fedgov never does: its first checkpoint covers entry 0)")
    return cp


def _proof_text(proof: Sequence[bytes]) -> str:
    """The one text form of a stored consistency proof: `["<b64>", "<b64>"]` (comma and space between)."""
    return json.dumps([base64.b64encode(p).decode("ascii") for p in proof])


def load_known_checkpoint(path: Path, trusted: Sequence[VerifierKey]) -> KnownCheckpoint:
    """Read a saved checkpoint note (`fedgov audit checkpoint --out`); it must carry a trusted signature."""
    try:
        text = path.read_bytes().decode("utf-8")  # no newline translation: the note's bytes are signed
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read --known-checkpoint {path}: {getattr(err, 'strerror', None) or err}") from err
    try:
        return KnownCheckpoint(str(path), _check_signed(text, trusted), text)
    except CheckpointError as err:
        raise UsageError(f"--known-checkpoint {path} is not a checkpoint signed by a trusted key: {err}") from err


def _signed_checkpoints(checkpoints: Sequence[dict[str, Any]], trusted: Sequence[VerifierKey],
                        origin: str) -> list[tuple[int, Checkpoint]]:
    """Step 1 of §6: each stored checkpoint signed, of this ledger, growing, consistent with the one before."""
    if not checkpoints:
        raise VerificationError("no signed checkpoint: nothing in this ledger is covered by a signature (a fedgov "
                                "ledger is signed from its creation on, so its checkpoints were removed)")
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
        if cp.origin != origin:
            raise VerificationError(f"{label}: origin {cp.origin!r} is not this ledger's {origin!r}")
        if cp.size != row["tree_size"]:
            raise VerificationError(f"{label}: signed tree size {cp.size} differs from the row's {row['tree_size']}")
        try:
            proof = [base64.b64decode(p, validate=True) for p in json.loads(row["consistency_proof"])]
            if _proof_text(proof) != row["consistency_proof"]:
                raise ValueError("not in its one text form")
        except (ValueError, TypeError, RecursionError, binascii.Error) as err:
            raise VerificationError(f"{label}: consistency_proof is not a JSON array of base64 hashes written "
                                    f'["<b64>", "<b64>"] ({err})') from err
        if previous is None:
            if proof:
                raise VerificationError(f"{label}: the first checkpoint's consistency_proof must be []")
        else:
            if cp.size < previous.size:
                raise VerificationError(f"{label}: tree size {cp.size} is smaller than the previous {previous.size}")
            try:
                merkle.verify_consistency(previous.size, cp.size, proof, previous.root, cp.root)
            except merkle.ProofError as err:
                raise VerificationError(f"{label}: not consistent with checkpoint #{row['id'] - 1} "
                                        f"(fork or rewritten history): {err}") from err
        parsed.append((row["id"], cp))
        previous = cp
    return parsed


@dataclass(frozen=True)
class _Target:
    """A signed tree size the recomputed root must match: a stored or a known checkpoint."""

    size: int
    root: bytes
    label: str
    known: bool


def verify_rows(rows: Iterable[EntryRow], checkpoints: Sequence[dict[str, Any]], trusted: Sequence[VerifierKey],
                *, origin: str, known: Sequence[KnownCheckpoint] = (), nodes: ExpectedNodes | None = None,
                min_level: int = 1) -> VerifyReport:
    """Verify entry rows (in seq order) and checkpoint rows (in id order) against `trusted` keys (§6).

    `origin` is the one the ledger's identity requires; `known` are checkpoints held from
    outside, each of which the ledger must still contain. When `nodes` is given, it
    collects every complete subtree of level >= `min_level`, for the cache check.
    """
    parsed = _signed_checkpoints(checkpoints, trusted, origin)
    for item in known:
        if item.checkpoint.origin != origin:
            raise UsageError(f"known checkpoint {item.source} belongs to {item.checkpoint.origin!r}, not to this "
                             f"ledger {origin!r}")
    targets = sorted([_Target(cp.size, cp.root, f"checkpoint #{cp_id}", False) for cp_id, cp in parsed]
                     + [_Target(k.checkpoint.size, k.checkpoint.root, f"known checkpoint {k.source}", True)
                        for k in known], key=lambda t: t.size)
    pending = iter(targets)
    target = next(pending, None)
    frontier = merkle.Frontier()
    expected = 0
    it = iter(rows)
    encode_leaf = LeafEncoder()
    keep = nodes is not None
    while True:
        chunk = list(islice(it, VERIFY_CHUNK))
        if not chunk:
            break
        leaves, failure = _leaf_hashes(chunk, expected, encode_leaf)
        # Fold the good leaves in, checking each signed root as the tree reaches its size, so
        # the failure reported is the first one in ledger order.
        start, pos = frontier.size, 0
        expected += len(leaves)
        while target is not None and target.size <= expected:
            cut = target.size - start
            _collect(nodes, frontier.extend(leaves[pos:cut], keep_nodes=keep, min_level=min_level))
            pos = max(pos, cut)
            _check_root(target, frontier)
            target = next(pending, None)
        _collect(nodes, frontier.extend(leaves[pos:], keep_nodes=keep, min_level=min_level))
        if failure is not None:
            raise failure
    if target is not None:
        if target.known:
            raise VerificationError(f"{target.label} covers {target.size} entries but the ledger holds only "
                                    f"{expected}: the ledger was rolled back or truncated")
        raise VerificationError(f"{target.label} covers {target.size} entries but the ledger holds "
                                f"only {expected}: entries were removed (truncated tail)")
    return VerifyReport(expected, len(parsed), frontier.root().hex(), max(t.size for t in targets),
                        tuple(sorted(k.checkpoint.size for k in known)))


def recompute_tree(rows: Iterable[EntryRow], min_level: int) -> tuple[int, ExpectedNodes]:
    """Every complete subtree of level >= `min_level` from the entries themselves (for `repair-cache`).

    Each row's leaf hash is recomputed and must equal the stored one: the cache can be
    rebuilt, an altered entry cannot be repaired.
    """
    frontier = merkle.Frontier()
    nodes: ExpectedNodes = {}
    encode_leaf = LeafEncoder()
    it = iter(rows)
    while chunk := list(islice(it, VERIFY_CHUNK)):
        leaves, failure = _leaf_hashes(chunk, frontier.size, encode_leaf)
        add_nodes(nodes, frontier.extend(leaves, min_level=min_level))
        if failure is not None:
            raise failure
    return frontier.size, nodes


def _collect(nodes: ExpectedNodes | None, completed: list[tuple[int, int, bytes]]) -> None:
    if nodes is not None:
        add_nodes(nodes, completed)


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
                                             row[8], as_bytes(row[9]))).digest()
        except (TypeError, ValueError) as err:
            return leaves, VerificationError(f"entry seq {seq}: malformed row ({err})")
        if leaf != row[10]:
            return leaves, VerificationError(f"entry seq {seq}: stored fields do not hash to its recorded leaf "
                                             "hash (entry altered after it was appended)")
        append(leaf)
        expected += 1
    return leaves, None


def _check_root(target: _Target, frontier: merkle.Frontier) -> None:
    root = frontier.root()
    if root != target.root:
        why = "history rewritten" if target.known else "entries rewritten, or a forked checkpoint"
        raise VerificationError(f"{target.label} (tree size {target.size}): signed root {target.root.hex()} does not "
                                f"match the entries' root {root.hex()} ({why})")


def verify_ledger(ws: Any, trusted: Sequence[VerifierKey] | None = None,
                  known: Sequence[KnownCheckpoint] = (), workspace_head: bool = True) -> VerifyReport:
    """Verify the ledger of a Workspace, read-only and with no secret; the cache of tree nodes too.

    Trusts `trusted`, else the workspace trust file. Besides `known`, the workspace's own
    record of its last signed checkpoint (`latest_checkpoint`), when present, must still
    be contained in the ledger: that catches a rollback of the database alone
    (`workspace_head=False` leaves it out, for adopting a restored database on purpose).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from governance.ledger.store import LedgerStore

    keys = list(trusted) if trusted else load_trusted_keys(ws.trust_path)
    head = _workspace_head(ws, keys) if workspace_head else None
    known = [*known, *([head] if head else [])]
    store = LedgerStore.open(ws.db_url, readonly=True)
    try:
        origin = ledger_origin(store.meta, "the ledger's meta table")
        with store.read() as conn:
            checkpoints = store.checkpoints(conn)
            nodes: ExpectedNodes = {}
            rows = store.iter_entries(conn)
            try:
                report = verify_rows(rows, checkpoints, keys, origin=origin, known=known, nodes=nodes,
                                     min_level=store.min_stored_level)
            finally:
                rows.close()  # before the connection goes, also when a row failed
            diff = compare(nodes, store.iter_nodes(conn), store.min_stored_level)
    except (SQLAlchemyError, store.engine.dialect.loaded_dbapi.Error) as err:
        raise VerificationError(f"a stored row cannot be read as the schema defines it (tampered): "
                                f"{type(err).__name__}") from err
    finally:
        store.close()
    if diff:
        raise VerificationError(f"{diff.describe()}: the cache of tree nodes is corrupted (entries and checkpoints "
                                "verify); rebuild it with `fedgov audit repair-cache`")
    stored = checkpoints[-1]["tree_size"]
    if head is not None and head.checkpoint.size > stored:
        raise VerificationError(f"the database's latest checkpoint covers {stored} entries but this workspace signed "
                                f"a tree of {head.checkpoint.size}: checkpoints were deleted from the database")
    return VerifyReport(report.entries, report.checkpoints, report.root_hex, report.signed_size, report.known,
                        diff.checked)


def _workspace_head(ws: Any, trusted: Sequence[VerifierKey]) -> KnownCheckpoint | None:
    """The workspace's own signed head, when there is one, as a known checkpoint."""
    path = ws.head_path
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise VerificationError(f"the workspace's {path.name} cannot be read: {err}") from err
    try:
        return KnownCheckpoint(f"{path.name} (the workspace's last signed)", _check_signed(text, trusted), text)
    except CheckpointError as err:
        raise VerificationError(f"the workspace's {path.name} is not signed by a trusted key: {err}") from err


def signers_of(known: Sequence[KnownCheckpoint], keys: Sequence[VerifierKey]) -> list[VerifierKey]:
    """The keys among `keys` that signed every known checkpoint: a note kept from before pins its signer.

    Without this, a bundle could ship an extra key under the ledger's name and sign a forged
    continuation with it, while the known checkpoint still matched the genuine prefix.
    """
    pinned = []
    for key in keys:
        try:
            for item in known:
                verify_trusted(item.text, [key])
        except CheckpointError:
            continue
        pinned.append(key)
    if not pinned:
        raise VerificationError("no key in the bundle's trusted_keys signed every --known-checkpoint")
    return pinned


def verify_bundle(path: Path, trusted: Sequence[VerifierKey] | None = None,
                  known: Sequence[KnownCheckpoint] = ()) -> VerifyReport:
    """Verify an offline evidence bundle (`fedgov audit export`): the checks of `verify_rows`, from files.

    Trusts `trusted`, else the key file shipped in the bundle (whose worth is only as good
    as the channel the bundle came by). Every line must be in the one byte form of §10,
    and after the signed checks every file's SHA-256 must match the manifest.
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
        keys = signers_of(known, keys) if known else keys
    origin = ledger_origin(reader.meta(), "bundle file meta.json")
    report = verify_rows(reader.entries(), reader.checkpoints(), keys, origin=origin, known=known)
    reader.check_manifest()
    return report
