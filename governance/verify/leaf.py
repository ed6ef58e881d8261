"""Leaf bytes: the RFC 8785 (JCS) encoding of a stored entry row, ciphertext included.

Hashing needs no secret, and crypto-shredding (deleting a data key) never breaks a proof.
Members in JCS order: ciphertext (standard padded base64), config_hash, entry_type,
key_id, model_hash, node_id, round (integer or null), run_id, seq, timestamp.
"""

from __future__ import annotations

from binascii import b2a_base64
from json.encoder import encode_basestring  # type: ignore[attr-defined]

from governance.verify.canonical import MAX_SAFE_INTEGER

LEAF_FIELDS = ("ciphertext", "config_hash", "entry_type", "key_id", "model_hash",
               "node_id", "round", "run_id", "seq", "timestamp")


def as_bytes(value: object) -> bytes:
    """A BLOB column's value as bytes; TypeError for anything else (a hand-edited row may hold text or a number)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"a binary column holds {type(value).__name__}, not bytes")


def leaf_bytes(seq: int, timestamp: str, entry_type: str, run_id: str, round_: int | None, node_id: str,
               model_hash: str, config_hash: str, key_id: str, ciphertext: bytes) -> bytes:
    """The leaf bytes of one row; TypeError / ValueError when seq or round is not an I-JSON integer."""
    return LeafEncoder()(seq, timestamp, entry_type, run_id, round_, node_id, model_hash, config_hash, key_id,
                         ciphertext)


class LeafEncoder:
    """`leaf_bytes` for many rows: the members rows share (index fields, timestamp) are encoded once.

    The keys are pre-sorted, so the format strings below are exactly the JCS form; equal to
    `canonical_bytes` of the row as an object over LEAF_FIELDS (a test holds them to it).
    """

    MAX_CACHED = 4096  # distinct index-field combinations kept; cleared beyond that

    def __init__(self) -> None:
        # Read directly by governance.verify.rows.leaf_hashes, which encodes a row whose parts are both here itself.
        self.middles: dict[tuple, bytes] = {}  # (config_hash, entry_type, key_id, model_hash, node_id, round, run_id)
        self.tails: dict[str, bytes] = {}  # timestamp -> its part

    def __call__(self, seq: int, timestamp: str, entry_type: str, run_id: str, round_: int | None, node_id: str,
                 model_hash: str, config_hash: str, key_id: str, ciphertext: bytes) -> bytes:
        if type(seq) is not int:
            raise TypeError("seq and round must be integers")
        if seq < 0 or seq > MAX_SAFE_INTEGER:
            raise ValueError("seq and round must lie within ±(2^53-1) (RFC 8785)")
        middle, tail = self.parts(timestamp, entry_type, run_id, round_, node_id, model_hash, config_hash, key_id)
        return b'{"ciphertext":"' + b2a_base64(ciphertext, newline=False) + middle + b"%d" % seq + tail

    def parts(self, timestamp: str, entry_type: str, run_id: str, round_: int | None, node_id: str, model_hash: str,
              config_hash: str, key_id: str) -> tuple[bytes, bytes]:
        """(middle, tail): a leaf is `{"ciphertext":"` + base64 + middle + seq digits + tail; bulk writers use them."""
        if not (round_ is None or type(round_) is int):  # before the cache: True == 1 would find round 1's middle
            raise TypeError("seq and round must be integers")
        key = (config_hash, entry_type, key_id, model_hash, node_id, round_, run_id)
        middle = self.middles.get(key)
        if middle is None:
            if round_ is not None and not -MAX_SAFE_INTEGER <= round_ <= MAX_SAFE_INTEGER:  # once per key
                raise ValueError("seq and round must lie within ±(2^53-1) (RFC 8785)")
            if len(self.middles) >= self.MAX_CACHED:
                self.middles.clear()
            middle = self.middles[key] = (
                '","config_hash":%s,"entry_type":%s,"key_id":%s,"model_hash":%s,"node_id":%s,"round":%s,'
                '"run_id":%s,"seq":'
                % (encode_basestring(config_hash), encode_basestring(entry_type), encode_basestring(key_id),
                   encode_basestring(model_hash), encode_basestring(node_id), "null" if round_ is None else round_,
                   encode_basestring(run_id))
            ).encode("utf-8")
        tail = self.tails.get(timestamp)
        if tail is None:
            if len(self.tails) >= self.MAX_CACHED:
                self.tails.clear()
            tail = self.tails[timestamp] = (',"timestamp":%s}' % encode_basestring(timestamp)).encode("utf-8")
        return middle, tail
