"""Envelope encryption: AES-256-GCM data keys per scope, wrapped by a key-encryption key.

Each ciphertext's associated data names its place in the ledger (ledger id, seq,
entry type, key id), so a ciphertext moved to another row fails to decrypt.
Rotating the KEK only re-wraps data keys: ciphertexts and leaf hashes never change.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from governance.errors import FedgovError, UsageError, VerificationError
from governance.ledger.fast_canonical import fast_canonical_bytes
from governance.verify.canonical import canonical_bytes

NONCE_SIZE = 12
BLOB_MAGIC = b"FGB1"
KEY_ID_SIZE = 16


class KeyDestroyedError(FedgovError):
    """The data key for a scope was crypto-shredded: its payloads are gone for good."""


class UnknownDataKeyError(KeyDestroyedError):
    """An entry names a data key the ledger never had: the row was not written by fedgov."""


class DecryptionError(VerificationError):
    """A ciphertext failed authentication: altered, or moved to another place."""


class KeyUnwrapError(UsageError):
    """A wrapped data key does not open under the key-encryption key (wrong KEK)."""


def new_key() -> bytes:
    """A fresh 256-bit AES key."""
    return AESGCM.generate_key(bit_length=256)


def new_key_id() -> str:
    """A random data key id, 32 hex characters."""
    return os.urandom(KEY_ID_SIZE).hex()


def kek_id(kek: bytes) -> str:
    """A public fingerprint of a KEK: hex of the first 8 bytes of SHA-256("fedgov-kek" || kek)."""
    return hashlib.sha256(b"fedgov-kek" + kek).digest()[:8].hex()


def wrap(kek: bytes, data_key: bytes) -> bytes:
    """Wrap a data key under the KEK (RFC 3394 AES key wrap)."""
    return aes_key_wrap(kek, data_key)


def unwrap(kek: bytes, wrapped: object) -> bytes:
    """Unwrap a data key as stored; raise KeyUnwrapError when it is not bytes or the KEK did not wrap it."""
    if not isinstance(wrapped, (bytes, bytearray, memoryview)):
        raise KeyUnwrapError(f"a stored data key is {type(wrapped).__name__}, not bytes (the row was edited)")
    try:
        return aes_key_unwrap(kek, bytes(wrapped))
    except (InvalidUnwrap, ValueError) as err:
        raise KeyUnwrapError("a data key does not unwrap under this key-encryption key") from err


def entry_aad(ledger_id: str, seq: int, entry_type: str, key_id: str) -> bytes:
    """Associated data binding an entry ciphertext to its ledger, position, type and key (JCS, by the C encoder
    where that is provably the same bytes: once per entry read, once per (type, key) in an append)."""
    return fast_canonical_bytes(
        {"entry_type": entry_type, "key_id": key_id, "ledger_id": ledger_id, "purpose": "fedgov-entry-v1", "seq": seq}
    )


def entry_aad_prefix(ledger_id: str, entry_type: str, key_id: str) -> bytes:
    """`entry_aad(...)` up to the seq: `entry_aad(l, seq, t, k) == entry_aad_prefix(l, t, k) + b"%d}" % seq`.

    "seq" sorts last among the AAD members, so the per-entry part is a suffix and a bulk
    append encodes the rest once per (type, key) instead of once per entry.
    """
    full = entry_aad(ledger_id, 0, entry_type, key_id)
    return full[:-len(b"0}")]


def nonces(count: int) -> bytes:
    """`count` fresh random 12-byte nonces, concatenated: one getrandom call for a whole batch."""
    return os.urandom(NONCE_SIZE * count)


def blob_aad(ledger_id: str, key_id: str, aad: bytes) -> bytes:
    """Associated data for an archive blob: the caller's AAD, bound to ledger and key."""
    return canonical_bytes(
        {"aad": aad.hex(), "key_id": key_id, "ledger_id": ledger_id, "purpose": "fedgov-blob-v1"}
    )


def seal(aead: AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt: 12-byte random nonce || AES-GCM ciphertext || 16-byte tag."""
    nonce = os.urandom(NONCE_SIZE)
    return nonce + aead.encrypt(nonce, plaintext, aad)


def open_sealed(aead: AESGCM, sealed: bytes, aad: bytes, what: str) -> bytes:
    """Decrypt what `seal` made; raise DecryptionError naming `what` when it does not authenticate."""
    try:
        return aead.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], aad)
    except InvalidTag as err:
        raise DecryptionError(f"{what}: ciphertext does not authenticate (altered or moved)") from err


def open_entry(aead: AESGCM, ledger_id: str, seq: int, entry_type: str, key_id: str, ciphertext: bytes,
               what: str) -> dict[str, Any]:
    """An entry's payload (§4: AAD of its ledger, seq, type and key): the one decryption every reader uses.

    The ledger reads with keys it opens itself; a bundle reader with the keys wrapped to it.
    """
    return json.loads(open_sealed(aead, ciphertext, entry_aad(ledger_id, seq, entry_type, key_id), what))
