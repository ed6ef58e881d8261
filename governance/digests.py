"""Digests of model arrays and metrics, so a ledger entry can name them in 64 hex chars.

A digest must be the same on every machine that holds the same values, so the
bytes hashed are written down here exactly (copied into docs/ledger-format.md).

``arrays_digest`` byte layout
-----------------------------
SHA-256 over the concatenation, for each ``(name, array)`` pair in the order
given (order matters; no count header, no separator), of::

    u32 BE  len(name_utf8)      name_utf8
    u32 BE  len(dtype_ascii)    dtype_ascii
    u32 BE  ndim
    u64 BE  dim_0 ... u64 BE dim_{ndim-1}
    u64 BE  len(data)           data

- ``name_utf8``: the array's name encoded as UTF-8.
- ``dtype_ascii``: ``np.dtype.str`` after normalising to little-endian, e.g.
  ``"<f4"``, ``"<i8"``, ``"|u1"``, ``"|b1"``. A big-endian ``">f4"`` array hashes
  as ``"<f4"`` with its bytes swapped, so byte order on disk never changes the digest.
- ``data``: the array in C order, little-endian, no padding
  (``np.asarray(a, dtype=le_dtype, order="C").tobytes()``); ``len(data)`` is
  ``itemsize * prod(shape)``. A 0-d array has ``ndim = 0``, no dims, one item.
- Object and structured dtypes are refused: their bytes are not values.

The result is the lowercase hex SHA-256. A model's hash (``model_hash``) is
``arrays_digest`` over its named arrays, in the order the model lists them.

``metrics_digest``
------------------
Lowercase hex SHA-256 of the RFC 8785 canonical JSON of the metrics mapping
(``governance.verify.canonical.canonical_bytes``).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence

import numpy as np

from governance.errors import UsageError
from governance.verify.canonical import canonical_bytes


class DigestInputError(UsageError):
    """An array or metric that has no well-defined canonical bytes."""


def little_endian(dtype: np.dtype) -> np.dtype:
    """The same dtype with little-endian byte order (single-byte types unchanged)."""
    if dtype.hasobject or dtype.fields is not None:
        raise DigestInputError(
            f"dtype {dtype} has no canonical bytes: use plain numeric, bool or string arrays"
        )
    return dtype.newbyteorder("<")


def _length_prefixed_u32(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _update_with_array(h: "hashlib._Hash", name: str, array: np.ndarray) -> None:
    le = little_endian(array.dtype)
    data = np.asarray(array, dtype=le, order="C")  # ascontiguousarray would make 0-d 1-d
    h.update(_length_prefixed_u32(name.encode("utf-8")))
    h.update(_length_prefixed_u32(le.str.encode("ascii")))
    h.update(struct.pack(">I", data.ndim))
    h.update(struct.pack(f">{data.ndim}Q", *data.shape))
    h.update(struct.pack(">Q", data.nbytes))
    h.update(memoryview(data.reshape(-1)).cast("B"))


def arrays_digest(named_arrays: Sequence[tuple[str, np.ndarray]]) -> str:
    """SHA-256 hex over the canonical bytes of named arrays (layout in the module docstring)."""
    h = hashlib.sha256()
    for name, array in named_arrays:
        if not isinstance(name, str):
            raise DigestInputError(f"array name must be a string, got {type(name).__name__}")
        _update_with_array(h, name, np.asarray(array))
    return h.hexdigest()


def model_hash(named_arrays: Sequence[tuple[str, np.ndarray]]) -> str:
    """The hash that names a model version: ``arrays_digest`` of its named arrays."""
    return arrays_digest(named_arrays)


def metrics_digest(metrics: Mapping[str, int | float | str]) -> str:
    """SHA-256 hex of the canonical JSON of a metrics mapping."""
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise DigestInputError(f"metric name must be a string, got {key!r}")
        if not isinstance(value, int | float | str):
            raise DigestInputError(
                f"metric {key!r} is a {type(value).__name__}: only int, float and str are digested"
            )
    return hashlib.sha256(canonical_bytes(dict(metrics))).hexdigest()


class _Chunks(list):
    """Collects the bytes `_update_with_array` would hash, to store them instead."""

    def update(self, data: bytes | memoryview) -> None:
        self.append(bytes(data))


def encode_arrays(named_arrays: Sequence[tuple[str, np.ndarray]]) -> bytes:
    """The exact bytes `arrays_digest` hashes: so a stored model is its own hash preimage."""
    chunks = _Chunks()
    for name, array in named_arrays:
        _update_with_array(chunks, name, np.asarray(array))
    return b"".join(chunks)


def decode_arrays(blob: bytes) -> list[tuple[str, np.ndarray]]:
    """Parse bytes written by `encode_arrays` back into named arrays; refuse anything else."""
    view, pos, out = memoryview(blob), 0, []

    def take(n: int) -> memoryview:
        nonlocal pos
        if pos + n > len(view):
            raise DigestInputError("array bytes are truncated")
        part, pos = view[pos : pos + n], pos + n
        return part

    while pos < len(view):
        name = bytes(take(struct.unpack(">I", take(4))[0])).decode("utf-8")
        dtype = np.dtype(bytes(take(struct.unpack(">I", take(4))[0])).decode("ascii"))
        ndim = struct.unpack(">I", take(4))[0]
        shape = struct.unpack(f">{ndim}Q", take(8 * ndim))
        data = take(struct.unpack(">Q", take(8))[0])
        if len(data) != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
            raise DigestInputError(f"array {name!r}: {len(data)} bytes do not fit shape {shape} of {dtype}")
        out.append((name, np.frombuffer(bytes(data), dtype=dtype).reshape(shape)))
    return out
