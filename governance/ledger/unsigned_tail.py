"""Before the signer signs entries, it checks that a holder of the ledger's keys wrote them.

Whoever holds only the database can insert a row with a correct leaf hash: any type,
node or backdated time, under a made-up or a real key id. Verification, which needs no
secret, cannot tell. The signer can, because it holds the keys, and a signature is the
moment a row becomes evidence. So for every entry after the last checkpoint:

1. rows this process wrote itself (`OwnBatch`) must still have the leaf hashes it wrote
   (one SHA-256 over the batch's leaf hashes, compared with the stored ones);
2. every other row's leaf hash must match its fields, and
   a. once the ledger has registered identities, the row lies in a batch whose authenticator
      (fedgov_batch_auth, roles.py) verifies over the batch's leaf hashes: an HMAC under a key
      derived from the signing seed (a holder of the ledger's keys wrote it) or the Ed25519
      signature of a registered identity, for the entry types an identity may append. This
      is what vouches for *sealed* rows, which the signer cannot decrypt, and for rows under
      keys an auditor also holds (granted to it), which an AEAD check can no longer tell apart;
   b. rows before the first identity registration (nobody but the key holders held a data
      key then) may instead show that their data key is one the ledger made and still holds
      (or one being shredded in this very transaction), and that their ciphertext
      authenticates under that key with its associated data (§4).

Residual, stated in docs/ledger-format.md §12: the index fields of *another* process's
unsigned rows of kind (b) are covered by its leaf hash only, not by the AEAD, so a database
holder who rewrites them before anyone signs, and recomputes the leaf hash, is not caught here.
A batch authenticator (a) covers the leaf hashes, so every field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
import hmac
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Connection

from governance.ledger.envelope import NONCE_SIZE, entry_aad
from governance.ledger.roles import LEDGER_WRITER, Registered, batch_hmac, batch_message
from governance.ledger.signed_head import SigningRefusedError
from governance.ledger.store import LedgerStore
from governance.verify.leaf import LeafEncoder, as_bytes

INVESTIGATE = "an entry inserted or altered in the database; investigate with `fedgov audit log` and `fedgov audit verify`"


@dataclass(frozen=True)
class TailVouch:
    """What vouches for other writers' rows once identities exist (rule 3a)."""

    hmac_key: bytes = field(repr=False)
    identities: dict[str, Registered]  # fingerprint -> registered identity
    first_registration: int | None  # seq of the first identity.registered entry; None when there is none
    identity_types: frozenset[str]  # entry types an identity may append
    is_sealed_key: Callable[[str], bool]


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
                        aead_for: Callable[[str], AESGCM | None], ledger_id: str,
                        vouch: TailVouch | None = None) -> list[bytes]:
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
        leaves += _check_foreign(store, conn, position, batch.first, aead_for, ledger_id, vouch)
        stored = store.leaf_hashes_between(conn, batch.first, batch.end)
        if len(stored) != batch.count or hashlib.sha256(b"".join(stored)).digest() != batch.digest:
            raise SigningRefusedError(f"refusing to sign: entries {batch.first}..{batch.end - 1} differ from what this "
                                      f"process wrote ({INVESTIGATE})")
        leaves += stored
        position = batch.end
    leaves += _check_foreign(store, conn, position, end, aead_for, ledger_id, vouch)
    return leaves


def _check_foreign(store: LedgerStore, conn: Connection, start: int, end: int,
                   aead_for: Callable[[str], AESGCM | None], ledger_id: str,
                   vouch: TailVouch | None = None) -> list[bytes]:
    """Leaf hashes of entries [start, end) that another process wrote, each recomputed and authenticated."""
    if start >= end:
        return []
    encode = LeafEncoder()
    rows = store.entries_between(conn, start, end)
    recomputed: list[bytes] = []
    for expected, (seq, entry_type, ts, run_id, round_, node_id, model, config, key_id, ct, leaf) in enumerate(
            rows, start=start):
        if seq != expected:
            raise SigningRefusedError(f"refusing to sign: entry seq {expected} is missing ({INVESTIGATE})")
        try:
            ciphertext = as_bytes(ct)
            again = hashlib.sha256(b"\x00" + encode(seq, ts, entry_type, run_id, round_, node_id, model, config,
                                                    key_id, ciphertext)).digest()
        except (TypeError, ValueError) as err:
            raise SigningRefusedError(f"refusing to sign: entry seq {seq} is malformed ({err}; {INVESTIGATE})") from err
        if again != leaf:
            raise SigningRefusedError(f"refusing to sign: entry seq {seq}: its fields do not hash to its leaf hash "
                                      f"({INVESTIGATE})")
        recomputed.append(again)
    if len(recomputed) != end - start:
        raise SigningRefusedError(f"refusing to sign: entry seq {start + len(recomputed)} is missing ({INVESTIGATE})")
    if vouch is None:
        return _check_aead(rows, recomputed, aead_for, ledger_id)
    auths = store.batch_auths_between(conn, start, end)
    leaves: list[bytes] = []
    position = start
    while position < end:
        auth = auths.get(position)
        if auth is not None and 0 < auth[0] <= end - position:
            count, writer, tag = auth
            part = slice(position - start, position - start + count)
            _check_batch(rows[part], recomputed[part], position, writer, tag, vouch, ledger_id)
            leaves += recomputed[part]
            position += count
            continue
        row = rows[position - start]
        if vouch.first_registration is not None and position >= vouch.first_registration:
            sealed = " is sealed (the signer cannot decrypt it) and" if vouch.is_sealed_key(row[8]) else ""
            raise SigningRefusedError(f"refusing to sign: entry seq {position}{sealed} carries no writer authenticator: "
                                      f"no batch of a key holder or of a registered identity vouches for it "
                                      f"({INVESTIGATE})")
        leaves += _check_aead([row], [recomputed[position - start]], aead_for, ledger_id)
        position += 1
    return leaves


def _check_batch(rows: list[tuple], leaves: list[bytes], first: int, writer: str, tag: object, vouch: TailVouch,
                 ledger_id: str) -> None:
    """A batch authenticator must verify over exactly these leaf hashes, by a key holder or a registered identity."""
    span = f"entries {first}..{first + len(leaves) - 1}"
    try:
        tag = as_bytes(tag)
    except TypeError as err:
        raise SigningRefusedError(f"refusing to sign: {span}: their authenticator is not bytes ({INVESTIGATE})") \
            from err
    message = batch_message(ledger_id, first, leaves, writer)
    if writer == LEDGER_WRITER:
        if not hmac.compare_digest(batch_hmac(vouch.hmac_key, message), tag):
            raise SigningRefusedError(f"refusing to sign: {span}: their writer authenticator does not verify under "
                                      f"this ledger's key ({INVESTIGATE})")
        return
    registered = vouch.identities.get(writer)
    if registered is None or registered.seq >= first:
        raise SigningRefusedError(f"refusing to sign: {span} claim identity {writer[:40]!r} as their writer, which "
                                  f"this ledger had not registered before them ({INVESTIGATE})")
    for row in rows:
        if row[1] not in vouch.identity_types:
            raise SigningRefusedError(f"refusing to sign: entry seq {row[0]}: identity {registered.public.name} "
                                      f"(role {registered.public.role}) may append only "
                                      f"{', '.join(sorted(vouch.identity_types))} entries, not {row[1]} ({INVESTIGATE})")
    if not registered.public.verify(tag, message):
        raise SigningRefusedError(f"refusing to sign: {span}: the signature of identity {registered.public.name} does "
                                  f"not verify over them ({INVESTIGATE})")


def _check_aead(rows: list[tuple], recomputed: list[bytes], aead_for: Callable[[str], AESGCM | None],
                ledger_id: str) -> list[bytes]:
    """Rule 3b: each row's ciphertext authenticates under a data key the ledger holds."""
    leaves: list[bytes] = []
    for (seq, entry_type, _ts, _run, _round, _node, _model, _config, key_id, ct, _leaf), again in zip(rows,
                                                                                                     recomputed):
        ciphertext = as_bytes(ct)
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
        leaves.append(again)
    return leaves
