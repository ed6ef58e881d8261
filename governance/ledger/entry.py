"""Ledger entries: what callers hand in (EntryDraft), what is stored (Entry), and leaf bytes.

The leaf bytes are the RFC 8785 (JCS) encoding of the stored row, ciphertext included,
so hashing needs no secret and crypto-shredding never breaks a proof.
"""

from __future__ import annotations

import base64
from binascii import b2a_base64
from dataclasses import dataclass, field
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1  # RFC 8785 / I-JSON: seq and round must stay within ±(2^53-1)

LEAF_FIELDS = ("ciphertext", "config_hash", "entry_type", "key_id", "model_hash",
               "node_id", "round", "run_id", "seq", "timestamp")


def as_bytes(value: object) -> bytes:
    """A BLOB column's value as bytes; TypeError for anything else (a hand-edited row may hold text or a number)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"a binary column holds {type(value).__name__}, not bytes")


@dataclass(frozen=True)
class EntryDraft:
    """An entry to append. Index fields are plaintext and must carry no personal data."""

    entry_type: str
    payload: dict[str, Any]
    scope: str
    run_id: str = ""
    round: int | None = None
    node_id: str = ""
    model_hash: str = ""
    config_hash: str = ""


@dataclass(frozen=True)
class Entry:
    """A stored entry: plaintext index fields plus the encrypted payload."""

    seq: int
    entry_type: str
    timestamp: str
    run_id: str
    round: int | None
    node_id: str
    model_hash: str
    config_hash: str
    key_id: str
    ciphertext: bytes = field(repr=False)
    leaf_hash: bytes = field(repr=False)

    def leaf_bytes(self) -> bytes:
        return leaf_bytes(self.seq, self.timestamp, self.entry_type, self.run_id, self.round,
                          self.node_id, self.model_hash, self.config_hash, self.key_id, self.ciphertext)

    def index_fields(self) -> dict[str, Any]:
        """The plaintext fields, for listings."""
        return {"seq": self.seq, "entry_type": self.entry_type, "timestamp": self.timestamp,
                "run_id": self.run_id, "round": self.round, "node_id": self.node_id,
                "model_hash": self.model_hash, "config_hash": self.config_hash, "key_id": self.key_id}


def leaf_bytes(seq: int, timestamp: str, entry_type: str, run_id: str, round_: int | None, node_id: str,
               model_hash: str, config_hash: str, key_id: str, ciphertext: bytes) -> bytes:
    """JCS of the stored row: keys pre-sorted, so a format string is exactly the canonical form.

    Equal to `canonical_bytes({...})` over LEAF_FIELDS with ciphertext as standard
    padded base64; written out by hand because verification runs it a million times.
    """
    if type(seq) is not int or not (round_ is None or type(round_) is int):
        raise TypeError("seq and round must be integers")
    if not 0 <= seq <= MAX_SAFE_INTEGER or not (round_ is None or -MAX_SAFE_INTEGER <= round_ <= MAX_SAFE_INTEGER):
        raise ValueError("seq and round must lie within ±(2^53-1) (RFC 8785)")
    return (
        '{"ciphertext":"%s","config_hash":%s,"entry_type":%s,"key_id":%s,"model_hash":%s,'
        '"node_id":%s,"round":%s,"run_id":%s,"seq":%d,"timestamp":%s}'
        % (base64.b64encode(ciphertext).decode("ascii"), encode_basestring(config_hash),
           encode_basestring(entry_type), encode_basestring(key_id), encode_basestring(model_hash),
           encode_basestring(node_id), "null" if round_ is None else round_, encode_basestring(run_id),
           seq, encode_basestring(timestamp))
    ).encode("utf-8")


class LeafEncoder:
    """`leaf_bytes` for many rows: the members shared by rows with equal index fields are encoded once.

    Rows of one batch (or one ledger) repeat a few (type, run, round, node, hashes, key)
    combinations, so the per-row work shrinks to base64 of the ciphertext, the seq and a join.
    """

    MAX_CACHED = 4096  # distinct index-field combinations kept; cleared beyond that

    def __init__(self) -> None:
        self._middles: dict[tuple, bytes] = {}
        self._tails: dict[str, bytes] = {}

    def __call__(self, seq: int, timestamp: str, entry_type: str, run_id: str, round_: int | None, node_id: str,
                 model_hash: str, config_hash: str, key_id: str, ciphertext: bytes) -> bytes:
        if type(seq) is not int or not (round_ is None or type(round_) is int):
            raise TypeError("seq and round must be integers")
        if seq < 0 or seq > MAX_SAFE_INTEGER:
            raise ValueError("seq and round must lie within ±(2^53-1) (RFC 8785)")
        key = (config_hash, entry_type, key_id, model_hash, node_id, round_, run_id)
        middle = self._middles.get(key)
        if middle is None:
            if round_ is not None and not -MAX_SAFE_INTEGER <= round_ <= MAX_SAFE_INTEGER:  # once per key
                raise ValueError("seq and round must lie within ±(2^53-1) (RFC 8785)")
            if len(self._middles) >= self.MAX_CACHED:
                self._middles.clear()
            middle = self._middles[key] = (
                '","config_hash":%s,"entry_type":%s,"key_id":%s,"model_hash":%s,"node_id":%s,"round":%s,'
                '"run_id":%s,"seq":'
                % (encode_basestring(config_hash), encode_basestring(entry_type), encode_basestring(key_id),
                   encode_basestring(model_hash), encode_basestring(node_id), "null" if round_ is None else round_,
                   encode_basestring(run_id))
            ).encode("utf-8")
        tail = self._tails.get(timestamp)
        if tail is None:
            if len(self._tails) >= self.MAX_CACHED:
                self._tails.clear()
            tail = self._tails[timestamp] = (',"timestamp":%s}' % encode_basestring(timestamp)).encode("utf-8")
        return b'{"ciphertext":"' + b2a_base64(ciphertext, newline=False) + middle + b"%d" % seq + tail
