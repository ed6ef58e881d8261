"""Grants: a data key wrapped to someone's X25519 public key (docs/ledger-format.md §4).

grant = ephemeral X25519 public key (32) || nonce (12) || AES-256-GCM(data key (32)) || tag (16): 92 bytes.
The AES key is HKDF-SHA256 of the X25519 shared secret, salted with both public keys, info
`fedgov-grant-v1`; the associated data binds ledger, key id and recipient, so a grant pasted onto
another key or another recipient does not open. The ledger stores grants to registered
identities (fedgov_key_grants); `grant_keys_to` makes them for anyone, e.g. a bundle's recipient.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from governance.errors import UsageError
from governance.verify.canonical import canonical_bytes

if TYPE_CHECKING:
    from governance.identities import Identity, PublicIdentity


class KeyReader(Protocol):
    """What grant_keys_to needs of a reader: a `Ledger` opened with the operator's keys or as an identity."""

    ledger_id: str

    def data_key_bytes(self, key_id: str) -> bytes: ...

GRANT_PURPOSE = "fedgov-grant-v1"
GRANT_SIZE = 32 + 12 + 32 + 16


class GrantError(UsageError):
    """A grant that does not open with this key (another recipient, another key id, or altered)."""


def grant_aad(ledger_id: str, key_id: str, recipient_x25519: bytes) -> bytes:
    """JCS of {"key_id", "ledger_id", "purpose": "fedgov-grant-v1", "recipient": base64 of the X25519 key}."""
    return canonical_bytes({"key_id": key_id, "ledger_id": ledger_id, "purpose": GRANT_PURPOSE,
                            "recipient": base64.b64encode(recipient_x25519).decode("ascii")})


def _grant_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient,
                info=GRANT_PURPOSE.encode("ascii")).derive(shared)


def wrap_to(recipient_x25519: bytes, data_key: bytes, *, ledger_id: str, key_id: str) -> bytes:
    """Wrap a 32-byte data key to a recipient's raw X25519 public key: the 92-byte grant."""
    if len(recipient_x25519) != 32 or len(data_key) != 32:
        raise UsageError("a grant wraps a 32-byte data key to a 32-byte X25519 public key")
    ephemeral = X25519PrivateKey.generate()
    ephemeral_pub = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    try:
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_x25519))
    except ValueError as err:  # a low-order point: no shared secret
        raise UsageError("the recipient's X25519 key is not usable (a low-order point)") from err
    nonce = os.urandom(12)
    sealed = AESGCM(_grant_key(shared, ephemeral_pub, recipient_x25519)).encrypt(
        nonce, data_key, grant_aad(ledger_id, key_id, recipient_x25519))
    return ephemeral_pub + nonce + sealed


def open_grant(identity: Identity | X25519PrivateKey, wrapped: bytes, *, ledger_id: str, key_id: str) -> bytes:
    """The data key a grant holds, opened with the recipient's private X25519 key (an Identity, or the key)."""
    private = identity if isinstance(identity, X25519PrivateKey) else identity.x25519_key
    recipient = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    wrapped = bytes(wrapped)
    if len(wrapped) != GRANT_SIZE:
        raise GrantError(f"grant of data key {key_id}: {len(wrapped)} bytes, not {GRANT_SIZE} (altered)")
    ephemeral_pub, nonce, sealed = wrapped[:32], wrapped[32:44], wrapped[44:]
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_pub))
        return AESGCM(_grant_key(shared, ephemeral_pub, recipient)).decrypt(
            nonce, sealed, grant_aad(ledger_id, key_id, recipient))
    except (InvalidTag, ValueError) as err:
        raise GrantError(f"grant of data key {key_id} does not open with this key (another recipient, or "
                         "altered)") from err


def recipient_key(recipient: PublicIdentity | bytes) -> bytes:
    """The raw X25519 public key of a recipient given as a public identity or as the 32 raw bytes."""
    raw = recipient if isinstance(recipient, (bytes, bytearray)) else recipient.x25519
    if len(raw) != 32:
        raise UsageError("an X25519 public key is 32 bytes")
    return bytes(raw)


def grant_keys_to(ledger_reader: KeyReader, recipient: PublicIdentity | bytes, key_ids: Sequence[str], *,
                  skip_unreadable: bool = False) -> list[tuple[str, bytes]]:
    """Wrap the data keys `key_ids` (those the reader can open) to `recipient`: [(key_id, 92-byte grant)].

    The reader opens each key as it would to read a payload: an operator's ledger opens the keys
    wrapped under its KEK, an identity's the keys granted to it. A key it cannot open (sealed
    against it, or shredded) raises AccessDenied / KeyDestroyedError, or is left out with
    `skip_unreadable`. Nothing is recorded: the caller (an export) records what it hands out.
    """
    from governance.access_policy import AccessDenied
    from governance.ledger.envelope import KeyDestroyedError

    raw = recipient_key(recipient)
    granted: list[tuple[str, bytes]] = []
    for key_id in dict.fromkeys(key_ids):
        try:
            data_key = ledger_reader.data_key_bytes(key_id)
        except (AccessDenied, KeyDestroyedError):
            if skip_unreadable:
                continue
            raise
        granted.append((key_id, wrap_to(raw, data_key, ledger_id=ledger_reader.ledger_id, key_id=key_id)))
    return granted
