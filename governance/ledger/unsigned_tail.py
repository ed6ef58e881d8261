"""Before the signer signs entries, it checks that a holder of the ledger's keys wrote them.

Whoever holds only the database can insert a row with a correct leaf hash: any type,
node or backdated time, under a made-up or a real key id. Verification, which needs no
secret, cannot tell. The signer can, because it holds the keys, and a signature is the
moment a row becomes evidence. So for every entry after the last checkpoint:

1. rows this process wrote itself (`OwnBatch`) must still have the leaf hashes it wrote
   (one SHA-256 over the batch's leaf hashes, compared with the stored ones);
2. every other row's leaf hash must match its fields, its data key must be one the ledger
   made and still holds (or one being shredded in this very transaction), and its
   ciphertext must authenticate under that key with its associated data (§4): only a key
   holder can produce that.

Residual, stated in docs/ledger-format.md §12: the index fields of *another* process's
unsigned rows are covered by its leaf hash only, not by the AEAD, so a database holder who
rewrites them before anyone signs, and recomputes the leaf hash, is not caught here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Connection

from governance.ledger.envelope import NONCE_SIZE, entry_aad
from governance.ledger.signed_head import SigningRefusedError
from governance.ledger.store import LedgerStore
from governance.verify.leaf import LeafEncoder, as_bytes

INVESTIGATE = "an entry inserted or altered in the database; investigate with `fedgov audit log` and `fedgov audit verify`"


@dataclass(frozen=True)
class OwnBatch:
    """Entries [first, first + count) as this process appended them: the digest of their leaf hashes."""

    first: int
    count: int
    digest: bytes

    @classmethod
    def of(cls, first: int, leaves: list[bytes]) -> OwnBatch:
        return cls(first, len(leaves), hashlib.sha256(b"".join(leaves)).digest())

    @property
    def end(self) -> int:
        return self.first + self.count


def check_unsigned_tail(store: LedgerStore, conn: Connection, start: int, end: int, own: list[OwnBatch],
                        aead_for: Callable[[str], AESGCM | None], ledger_id: str) -> list[bytes]:
    """The leaf hashes of entries [start, end), each vouched for; SigningRefusedError unless a key holder wrote all.

    The caller builds the root it signs from these, not from the cached tree nodes, which
    whoever holds the database could have rewritten to commit to other rows.
    """
    leaves: list[bytes] = []
    position = start
    for batch in sorted((b for b in own if b.end > start and b.first < end), key=lambda b: b.first):
        if batch.first < start or batch.end > end:
            raise SigningRefusedError(f"refusing to sign: entries {batch.first}..{batch.end - 1} that this process "
                                      f"wrote are no longer where it wrote them ({INVESTIGATE})")
        leaves += _check_foreign(store, conn, position, batch.first, aead_for, ledger_id)
        stored = store.leaf_hashes_between(conn, batch.first, batch.end)
        if len(stored) != batch.count or hashlib.sha256(b"".join(stored)).digest() != batch.digest:
            raise SigningRefusedError(f"refusing to sign: entries {batch.first}..{batch.end - 1} differ from what this "
                                      f"process wrote ({INVESTIGATE})")
        leaves += stored
        position = batch.end
    leaves += _check_foreign(store, conn, position, end, aead_for, ledger_id)
    return leaves


def _check_foreign(store: LedgerStore, conn: Connection, start: int, end: int,
                   aead_for: Callable[[str], AESGCM | None], ledger_id: str) -> list[bytes]:
    """Leaf hashes of entries [start, end) that another process wrote, each recomputed and authenticated."""
    if start >= end:
        return []
    encode = LeafEncoder()
    leaves: list[bytes] = []
    for expected, (seq, entry_type, ts, run_id, round_, node_id, model, config, key_id, ct, leaf) in enumerate(
            store.entries_between(conn, start, end), start=start):
        if seq != expected:
            raise SigningRefusedError(f"refusing to sign: entry seq {expected} is missing ({INVESTIGATE})")
        try:
            ciphertext = as_bytes(ct)
            recomputed = hashlib.sha256(b"\x00" + encode(seq, ts, entry_type, run_id, round_, node_id, model, config,
                                                        key_id, ciphertext)).digest()
        except (TypeError, ValueError) as err:
            raise SigningRefusedError(f"refusing to sign: entry seq {seq} is malformed ({err}; {INVESTIGATE})") from err
        if recomputed != leaf:
            raise SigningRefusedError(f"refusing to sign: entry seq {seq}: its fields do not hash to its leaf hash "
                                      f"({INVESTIGATE})")
        aead = aead_for(key_id)
        if aead is None:
            raise SigningRefusedError(f"refusing to sign: entry seq {seq} names data key {key_id}, which this ledger "
                                      f"does not hold ({INVESTIGATE})")
        try:
            aead.decrypt(ciphertext[:NONCE_SIZE], ciphertext[NONCE_SIZE:],
                         entry_aad(ledger_id, seq, entry_type, key_id))
        except InvalidTag as err:
            raise SigningRefusedError(f"refusing to sign: entry seq {seq}: its ciphertext does not authenticate under "
                                      f"its data key ({INVESTIGATE})") from err
        leaves.append(recomputed)
    if len(leaves) != end - start:
        raise SigningRefusedError(f"refusing to sign: entry seq {start + len(leaves)} is missing ({INVESTIGATE})")
    return leaves
