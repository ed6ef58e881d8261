"""The signer's side of checkpoints: sign a C2SP checkpoint, and check its own notes.

The note format, parsing and the verifier's checks are in governance/verify/checkpoint.py;
the body signed here is the one that module defines.
"""

from __future__ import annotations

import base64

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from governance.verify.checkpoint import SIG_PREFIX, Checkpoint, CheckpointError, VerifierKey, body_text, key_id, \
    parse_checkpoint


def public_key_bytes(private_key: Ed25519PrivateKey) -> bytes:
    """Raw 32-byte public key."""
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def sign_checkpoint(origin: str, size: int, root: bytes, name: str, private_key: Ed25519PrivateKey) -> str:
    """Return the signed note text for a checkpoint."""
    body = body_text(origin, size, root)
    sig = private_key.sign(body.encode("utf-8"))
    kid = key_id(name, public_key_bytes(private_key))
    return f"{body}\n{SIG_PREFIX}{name} {base64.b64encode(kid + sig).decode()}\n"


def verify_checkpoint(text: str, trusted: VerifierKey, origin: str | None = None) -> Checkpoint:
    """Parse and check a checkpoint's signature by `trusted`; raise CheckpointError if absent or bad."""
    cp = parse_checkpoint(text)
    if origin is not None and cp.origin != origin:
        raise CheckpointError(f"checkpoint origin {cp.origin!r} is not this ledger's {origin!r}")
    public_key = Ed25519PublicKey.from_public_bytes(trusted.public_key)
    for name, raw in cp.signatures:
        if name == trusted.name and raw[:4] == trusted.key_id:
            try:
                public_key.verify(raw[4:], cp.body.encode("utf-8"))
            except InvalidSignature as err:
                raise CheckpointError(f"signature by trusted key {trusted.name!r} is invalid") from err
            return cp
    raise CheckpointError(f"no signature by the trusted key {trusted.name!r} (key id {trusted.key_id.hex()})")
