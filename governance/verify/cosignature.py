"""C2SP tlog-cosignature/v1: a witness's timestamped Ed25519 countersignature on a checkpoint.

A witness that saw a log's checkpoints grow consistently signs `cosignature/v1\\n`,
`time <POSIX seconds>\\n`, then the checkpoint body, and adds a signed-note line
`— <name> base64(key ID || u64 big-endian time || Ed25519 signature)`, key ID =
SHA-256(name || 0x0A || 0x04 || public key)[:4]. Witnesses are pinned by their verifier key
`<name>+<hex key ID>+base64(0x04 || public key)` (docs/ledger-format.md §5.1).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from governance.verify.checkpoint import Checkpoint, CheckpointError, parse_checkpoint, split_note_key
from governance.verify.errors import VerificationError

COSIGNATURE_ALG = b"\x04"  # signed-note signature type: timestamped Ed25519 witness cosignature
MAX_TIMESTAMP = 2**63 - 1
SIGNATURE_BYTES = 4 + 8 + 64  # key ID, timestamp, Ed25519 signature
COSIGNATURE_DIR = "cosignatures"  # in a workspace or a bundle directory: one `<tree size>.note` per cosigned size


class CosignatureError(VerificationError):
    """A witness key or cosignature is malformed, invalid, or missing where it is required."""


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    """Key ID of a cosignature/v1 key: first 4 bytes of SHA-256(name || LF || 0x04 || key)."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + COSIGNATURE_ALG + public_key).digest()[:4]


@dataclass(frozen=True)
class WitnessKey:
    """A witness's named Ed25519 public key, as its cosignature/v1 verifier key."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return cosigner_key_id(self.name, self.public_key)

    def to_text(self) -> str:
        """`<name>+<hex key ID>+<base64(0x04 || key)>`."""
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(COSIGNATURE_ALG + self.public_key).decode()}"

    @classmethod
    def from_text(cls, text: str) -> WitnessKey:
        """Parse a witness verifier key; CosignatureError when malformed or not of type 0x04."""
        name, hex_id, raw = split_note_key(text, "witness key", CosignatureError)
        if raw[:1] != COSIGNATURE_ALG or len(raw) != 33:
            kind = "a log's (0x01) key, not a witness's" if raw[:1] == b"\x01" else "not an Ed25519 cosignature key"
            raise CosignatureError(f"witness key {name!r} is {kind} (want type 0x04, cosignature/v1)")
        key = cls(name, raw[1:])
        if key.key_id.hex() != hex_id:
            raise CosignatureError(f"witness key {name!r}: key id does not match the key")
        return key


def cosigned_message(body: str, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: the header line, the time line, then the checkpoint body."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise CosignatureError(f"cosignature time {timestamp} is out of range")
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode("utf-8")


@dataclass(frozen=True)
class Cosignature:
    """A verified cosignature: who, and when (POSIX seconds) they say they saw the checkpoint."""

    witness: WitnessKey
    timestamp: int


@dataclass(frozen=True)
class CosignedCheckpoint:
    """A checkpoint with the cosignatures of pinned witnesses that verified on it."""

    checkpoint: Checkpoint
    cosignatures: tuple[Cosignature, ...]
    source: str


def verify_cosigned(note_text: str, cosignature_lines: Sequence[str], witnesses: Sequence[WitnessKey],
                    source: str = "cosigned checkpoint") -> CosignedCheckpoint:
    """Check the cosignatures by `witnesses` on a checkpoint note (its own lines and `cosignature_lines`).

    Lines by other keys (the log's, unknown witnesses') are ignored, as signed-note readers
    do; a line whose name and key ID are a pinned witness's must verify, else the whole
    note fails. The log's own signature is not checked here: the caller compares the body
    with a checkpoint it verified. `source` names the note in errors.
    """
    text = note_text + "".join(line.rstrip("\n") + "\n" for line in cosignature_lines)
    try:
        cp = parse_checkpoint(text)
    except CheckpointError as err:
        raise CosignatureError(f"{source}: {err}") from err
    found = []
    for name, raw in cp.signatures:
        for witness in witnesses:
            if name != witness.name or raw[:4] != witness.key_id:
                continue
            timestamp = int.from_bytes(raw[4:12], "big")
            try:
                if len(raw) != SIGNATURE_BYTES or timestamp > MAX_TIMESTAMP:
                    raise InvalidSignature
                Ed25519PublicKey.from_public_bytes(witness.public_key).verify(
                    raw[12:], cosigned_message(cp.body, timestamp))
            except InvalidSignature as err:
                raise CosignatureError(f"{source}: the cosignature by witness {name!r} on tree size {cp.size} "
                                       "is invalid (altered, or not this checkpoint)") from err
            found.append(Cosignature(witness, timestamp))
    return CosignedCheckpoint(cp, tuple(found), source)


def require_cosigned(latest: Checkpoint, cosigned: Sequence[CosignedCheckpoint], required: Sequence[WitnessKey],
                     held: Mapping[int, bytes] | None = None) -> list[Cosignature]:
    """Each required witness must have cosigned `latest`; its newest such cosignature, in order.

    `held` maps the tree sizes of the checkpoints the verifier checked to their roots: a
    witness that cosigned another root at one of those sizes saw another history (split
    view). Raises CosignatureError naming the first witness that fails, and what it cosigned.
    """
    held = held or {}
    result = []
    for witness in required:
        mine = [(c.checkpoint, s) for c in cosigned for s in c.cosignatures
                if s.witness == witness and c.checkpoint.origin == latest.origin]
        who = f"witness {witness.name!r} ({witness.key_id.hex()})"
        for cp, _ in mine:
            if held.get(cp.size, cp.root) != cp.root or (cp.size == latest.size and cp.root != latest.root):
                ours = held.get(cp.size, latest.root)
                raise CosignatureError(f"{who} cosigned root {cp.root.hex()} at tree size {cp.size}, but this ledger's "
                                       f"checkpoint there has root {ours.hex()}: the log showed another history "
                                       "(split view)")
        newest = max((cp.size for cp, _ in mine), default=None)
        if newest is not None and newest > latest.size:  # checked first: a restored backup may hold its own cosignature
            raise CosignatureError(f"{who} cosigned tree size {newest}, larger than the latest signed checkpoint here "
                                   f"(tree size {latest.size}): this ledger was rolled back, or is not the one the "
                                   "witness saw")
        on_latest = [s for cp, s in mine if cp.body == latest.body]
        if on_latest:
            result.append(max(on_latest, key=lambda s: s.timestamp))
            continue
        if not mine:
            raise CosignatureError(f"no cosignature by {who} on the latest signed checkpoint (tree size "
                                   f"{latest.size})")
        raise CosignatureError(f"{who} has not cosigned the latest signed checkpoint (tree size {latest.size}); "
                               f"the newest it cosigned is tree size {newest}")
    return result


def read_cosigned_files(directories: Sequence[Path], files: Sequence[Path],
                        witnesses: Sequence[WitnessKey]) -> list[CosignedCheckpoint]:
    """The cosigned notes in `files` and in the `<tree size>.note` files of `directories`.

    A directory that does not exist holds none; an unreadable or malformed note fails, named.
    """
    paths = list(files)
    for directory in directories:
        if directory.is_dir():
            paths += sorted((p for p in directory.iterdir() if p.suffix == ".note" and p.stem.isdigit()),
                            key=lambda p: int(p.stem))
    found = []
    for path in paths:
        try:
            text = path.read_bytes().decode("utf-8")  # no newline translation: the bytes are signed
        except (OSError, UnicodeDecodeError) as err:
            raise CosignatureError(f"cannot read cosigned checkpoint {path}: {err}") from err
        found.append(verify_cosigned(text, (), witnesses, str(path)))
    return found
