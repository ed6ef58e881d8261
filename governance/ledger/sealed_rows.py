"""A batch of drafts to sealed entry rows and their leaf hashes: the append hot path.

Per entry the work is fixed: one JCS payload, one AES-256-GCM call with its associated
data (§4), one leaf encoding (§2) and one SHA-256 (§3). It is done column by column: each
step is one C-level `map` over the batch or a chunk of it (`AESGCM.encrypt`, `bytes.__mod__`,
`hashlib.sha256`, `zip` into rows), so the interpreter runs no bytecode per entry. What
rows share is worked out once per distinct combination of index fields: the data key, the
associated data up to the seq, and the leaf bytes between ciphertext and seq. The bytes are
those of `entry_aad` and `leaf_bytes` (tests hold them to it); docs/benchmarks.md gives the
per-step costs.
"""

from __future__ import annotations

import hashlib
from binascii import b2a_base64
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from governance.errors import UsageError
from governance.ledger import envelope
from governance.ledger.entry import EntryDraft
from governance.ledger.fast_canonical import fast_canonical_many
from governance.verify.canonical import MAX_SAFE_INTEGER
from governance.verify.leaf import LeafEncoder

_LEAF_HEAD = b'{"ciphertext":"'  # the first member in JCS order (§2)
_digest = type(hashlib.sha256()).digest

CHUNK = 1024  # rows sealed at a time while PostgreSQL's COPY reads them (see seal_rows)
NONCE = envelope.NONCE_SIZE
KeyFor = Callable[[str, str], tuple[str, AESGCM]]  # (entry_type, scope) -> (key id, AESGCM of that data key)


def check_draft(draft: EntryDraft) -> dict[str, Any]:
    """Validate a draft's fields; return its payload."""
    if not isinstance(draft.entry_type, str) or not draft.entry_type or len(draft.entry_type) > 64:
        raise UsageError("entry_type must be a non-empty string of at most 64 characters")
    if not isinstance(draft.scope, str) or not draft.scope:
        raise UsageError("scope must be a non-empty string")
    if draft.round is not None and (type(draft.round) is not int or abs(draft.round) > MAX_SAFE_INTEGER):
        raise UsageError("round must be None or an integer within ±(2^53-1)")
    for name, value in (("run_id", draft.run_id), ("node_id", draft.node_id), ("model_hash", draft.model_hash),
                        ("config_hash", draft.config_hash)):
        if not isinstance(value, str) or len(value) > 128:
            raise UsageError(f"{name} must be a string of at most 128 characters")
    if not isinstance(draft.payload, dict):
        raise UsageError("payload must be a dict")
    return draft.payload


@dataclass(frozen=True)
class DraftColumns:
    """A validated batch, one list per draft field (index fields as plain `str`, `int` or None)."""

    entry_types: list[str]
    scopes: list[str]
    run_ids: list[str]
    rounds: list[int | None]
    node_ids: list[str]
    model_hashes: list[str]
    config_hashes: list[str]
    payloads: list[dict[str, Any]]

    @classmethod
    def of(cls, drafts: Sequence[EntryDraft]) -> DraftColumns:
        """The batch's columns, checked as `check_draft` checks each draft (and failing with its message)."""
        columns = [list(map(attrgetter(name), drafts)) for name in _FIELDS]
        if not _plain_and_valid(*columns):
            for draft in drafts:  # the first invalid draft raises its one line, as one draft at a time would
                check_draft(draft)
            # Valid, but holding str subclasses: store and group them as the plain strings they hold.
            columns = [list(map(str.__str__, c)) if c and isinstance(c[0], str) else c for c in columns]
        return cls(*columns)

    def index_fields(self, start: int = 0, end: int | None = None) -> Iterator[tuple[str, str, str, int | None, str,
                                                                                 str, str]]:
        """Each draft's index fields as one tuple: what rows sharing a data key and a leaf middle agree on."""
        cut = slice(start, end)
        return zip(self.entry_types[cut], self.scopes[cut], self.run_ids[cut], self.rounds[cut], self.node_ids[cut],
                   self.model_hashes[cut], self.config_hashes[cut])


_FIELDS = ("entry_type", "scope", "run_id", "round", "node_id", "model_hash", "config_hash", "payload")


def _plain_and_valid(types: list[Any], scopes: list[Any], run_ids: list[Any], rounds: list[Any], node_ids: list[Any],
                     model_hashes: list[Any], config_hashes: list[Any], payloads: list[Any]) -> bool:
    """`check_draft` for a whole batch, column by column; False also for valid drafts holding str subclasses."""
    if not types:
        return True
    for column in (types, scopes, run_ids, node_ids, model_hashes, config_hashes):
        if set(map(type, column)) != {str}:
            return False
    if not (min(map(len, types)) >= 1 and max(map(len, types)) <= 64 and min(map(len, scopes)) >= 1):
        return False
    if max(max(map(len, column)) for column in (run_ids, node_ids, model_hashes, config_hashes)) > 128:
        return False
    if not set(map(type, rounds)) <= {int, type(None)}:
        return False
    numbered = set(rounds) - {None}
    if numbered and max(map(abs, numbered)) > MAX_SAFE_INTEGER:
        return False
    return all(issubclass(t, dict) for t in set(map(type, payloads)))


def seal_rows(columns: DraftColumns, first_seq: int, timestamp: str, ledger_id: str, key_for: KeyFor,
              chunk: int = CHUNK) -> tuple[Iterator[tuple], list[bytes]]:
    """Entry rows (ENTRY_COLUMNS order) for seqs first_seq, first_seq + 1, …, and their leaf hashes.

    The rows are sealed `chunk` at a time as the iterator is read, and the leaf hashes list
    fills as they are: complete once the rows are read to the end. Inserted by PostgreSQL's
    COPY, the server stores one chunk while this process seals the next (two cores, not one);
    SQLite inserts in this process, where one chunk for the whole batch is ~0.3 µs an entry
    cheaper. `key_for` is asked once per distinct (entry_type, scope).
    """
    if first_seq < 0 or first_seq + len(columns.payloads) - 1 > MAX_SAFE_INTEGER:  # as LeafEncoder checks each seq
        raise ValueError("seq and round must lie within ±(2^53-1) (RFC 8785)")
    distinct = set(columns.index_fields())
    keys: dict[tuple[str, str], tuple[str, AESGCM, bytes]] = {}  # (type, scope) -> key id, AESGCM, AAD prefix
    for entry_type, scope in {(fields[0], fields[1]) for fields in distinct}:
        key_id, aead = key_for(entry_type, scope)
        if type(aead) is not AESGCM:
            raise TypeError(f"data key {key_id} is a {type(aead).__name__}, not an AESGCM")
        keys[(entry_type, scope)] = (key_id, aead, envelope.entry_aad_prefix(ledger_id, entry_type, key_id))
    shared: dict[tuple, tuple[AESGCM, bytes, str, bytes]] = {}
    encode_leaf = LeafEncoder()
    leaf_tail = b""
    for fields in distinct:
        entry_type, scope, run_id, round_, node_id, model_hash, config_hash = fields
        key_id, aead, aad_prefix = keys[(entry_type, scope)]
        middle, leaf_tail = encode_leaf.parts(timestamp, entry_type, run_id, round_, node_id, model_hash,
                                              config_hash, key_id)
        shared[fields] = (aead, aad_prefix, key_id, middle)
    # SHA-256(0x00 || leaf bytes): the leaf prefix and the batch's one timestamp are in the format itself.
    leaf_format = b"\x00" + _LEAF_HEAD + b"%s%s%d" + leaf_tail.replace(b"%", b"%%")
    leaves: list[bytes] = []

    def rows() -> Iterator[tuple]:
        for start in range(0, len(columns.payloads), chunk):
            end = min(start + chunk, len(columns.payloads))
            seqs = range(first_seq + start, first_seq + end)
            aeads, aad_prefixes, key_ids, middles = zip(*map(shared.__getitem__, columns.index_fields(start, end)))
            plaintexts = fast_canonical_many(columns.payloads[start:end])
            raw = envelope.nonces(end - start)
            nonces = [raw[i:i + NONCE] for i in range(0, len(raw), NONCE)]
            aads = map(bytes.__add__, aad_prefixes, map(b"%d}".__mod__, seqs))
            ciphertexts = list(map(bytes.__add__, nonces, map(AESGCM.encrypt, aeads, nonces, plaintexts, aads)))
            encoded = [b2a_base64(c, newline=False) for c in ciphertexts]
            hashed = list(map(_digest, map(hashlib.sha256, map(leaf_format.__mod__, zip(encoded, middles, seqs)))))
            leaves.extend(hashed)
            yield from zip(seqs, columns.entry_types[start:end], repeat(timestamp), columns.run_ids[start:end],
                           columns.rounds[start:end], columns.node_ids[start:end], columns.model_hashes[start:end],
                           columns.config_hashes[start:end], key_ids, ciphertexts, hashed)

    return rows(), leaves

