"""C2SP tlog-checkpoint bodies in C2SP signed-note envelopes, signed with Ed25519.

The text format transparency logs use (Go sumdb, Sigstore, Tessera), so their witnesses
and tools read a fedgov checkpoint. Base64 is read in its one padded spelling only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from governance.verify.errors import UsageError, VerificationError

ED25519_ALG = b"\x01"
SIG_PREFIX = "\u2014 "  # em dash, space


class CheckpointError(VerificationError):
    """A checkpoint is malformed or carries no valid signature by a trusted key."""


def is_key_name(name: str) -> bool:
    """A signed-note key name: non-empty, no white space, no `+`."""
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def b64decode_exact(text: str) -> bytes:
    """Padded base64 whose re-encoding is `text` (unused padding bits zero); binascii.Error otherwise."""
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode("ascii") != text:
        raise binascii.Error("not the canonical base64 spelling of its bytes")
    return raw


def key_id(name: str, public_key: bytes) -> bytes:
    """Signed-note key ID of an Ed25519 key: first 4 bytes of SHA-256(name || LF || 0x01 || key)."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + ED25519_ALG + public_key).digest()[:4]


def split_note_key(text: str, what: str, error: type[Exception]) -> tuple[str, str, bytes]:
    """`<name>+<hex key id>+<base64 key>` split, `error` naming `what` if malformed; callers check the type byte."""
    text = text.strip(" \t\r\n")
    try:
        name, hex_id, b64 = text.split("+", 2)  # base64 may hold "+", the name may not
        raw = b64decode_exact(b64)
    except (ValueError, binascii.Error) as err:
        raise error(f"malformed {what} {text[:40]!r}") from err
    if not is_key_name(name):
        raise error(f"{what} name {name[:40]!r} is not a signed-note key name")
    return name, hex_id, raw


@dataclass(frozen=True)
class VerifierKey:
    """A named Ed25519 public key, as in a signed-note verifier key `name+hash+base64`."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    def to_text(self) -> str:
        """Signed-note verifier key string: `<name>+<hex key id>+<base64(0x01 || key)>`."""
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(ED25519_ALG + self.public_key).decode()}"

    @classmethod
    def from_text(cls, text: str) -> VerifierKey:
        """Parse a verifier key string; raise CheckpointError when malformed."""
        name, hex_id, raw = split_note_key(text, "verifier key", CheckpointError)
        if len(raw) != 33 or raw[:1] != ED25519_ALG:
            raise CheckpointError("verifier key is not an Ed25519 key")
        key = cls(name, raw[1:])
        if key.key_id.hex() != hex_id:
            raise CheckpointError(f"verifier key {name!r}: key id does not match the key")
        return key


def parse_trusted_keys(text: str, source: str) -> list[VerifierKey]:
    """Verifier keys from trust-file text (§5: split on LF, trim, skip blanks and `#`); `source` names it in errors."""
    lines = (raw.strip(" \t\r") for raw in text.split("\n"))
    keys = [VerifierKey.from_text(line) for line in lines if line and not line.startswith("#")]
    if not keys:
        raise UsageError(f"{source} names no trusted key")
    return keys


@dataclass(frozen=True)
class Checkpoint:
    """A parsed checkpoint: the three-line body and its signature lines."""

    origin: str
    size: int
    root: bytes
    body: str
    signatures: tuple[tuple[str, bytes], ...]  # (key name, keyID || signature)


def body_text(origin: str, size: int, root: bytes) -> str:
    """The signed checkpoint body: origin, decimal tree size, base64 root, each + LF."""
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse signed-note text into a Checkpoint; raise CheckpointError when malformed."""
    if not isinstance(text, str):
        raise CheckpointError(f"checkpoint note is {type(text).__name__}, not text")
    body, sep, sigs = text.partition("\n\n")
    if not sep:
        raise CheckpointError("checkpoint has no blank line before its signatures")
    body += "\n"
    lines = body.split("\n")
    if len(lines) < 4 or not lines[0]:
        raise CheckpointError("checkpoint body needs origin, tree size and root lines")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not (size_text.isascii() and size_text.isdigit()) or (size_text != "0" and size_text.startswith("0")) \
            or len(size_text) > 19:  # a tree size fits in 63 bits
        raise CheckpointError(f"checkpoint tree size {size_text!r} is not a decimal number")
    try:
        root = b64decode_exact(root_text)
    except binascii.Error as err:
        raise CheckpointError("checkpoint root is not base64") from err
    if len(root) != 32:
        raise CheckpointError(f"checkpoint root is {len(root)} bytes, want 32")
    if not sigs.endswith("\n"):
        raise CheckpointError("checkpoint does not end with a newline")
    signatures = []
    for line in sigs[:-1].split("\n"):
        if not line.startswith(SIG_PREFIX):
            raise CheckpointError(f"malformed signature line {line[:40]!r}")
        name, _, b64 = line[len(SIG_PREFIX):].rpartition(" ")
        try:
            raw = b64decode_exact(b64)
        except binascii.Error as err:
            raise CheckpointError("signature is not base64 (in its one spelling)") from err
        if not is_key_name(name) or len(raw) < 5:
            raise CheckpointError(f"malformed signature line {line[:40]!r}")
        signatures.append((name, raw))
    return Checkpoint(origin, int(size_text), root, body, tuple(signatures))


def verify_trusted(text: str, trusted: Sequence[VerifierKey]) -> Checkpoint:
    """Check a note against trusted keys, as C2SP signed-note verifiers do.

    Lines by unknown keys (a witness's cosignature, say) are ignored. Every line whose name
    and key id are a trusted key's must verify; at least one of them must be by a key named
    like the checkpoint's origin. Raises CheckpointError otherwise.
    """
    cp = parse_checkpoint(text)
    signed_by_origin = False
    for name, raw in cp.signatures:
        for key in trusted:
            if key.name == name and raw[:4] == key.key_id:
                try:
                    Ed25519PublicKey.from_public_bytes(key.public_key).verify(raw[4:], cp.body.encode("utf-8"))
                except InvalidSignature as err:
                    raise CheckpointError(f"signature by trusted key {name!r} is invalid") from err
                signed_by_origin = signed_by_origin or name == cp.origin
    if not signed_by_origin:
        raise CheckpointError(f"no signature by a trusted key named {cp.origin!r}")
    return cp
