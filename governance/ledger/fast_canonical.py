"""RFC 8785 (JCS) bytes via the C JSON encoder, for the writer's hot path.

`fast_canonical_bytes(v) == canonical_bytes(v)` always (governance/verify/canonical.py is
the definition); the C encoder is used only for the value shapes where that is provable.
"""

from __future__ import annotations

from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from governance.verify.canonical import MAX_SAFE_INTEGER, CanonicalError, canonical_bytes


# The C JSON encoder gives the JCS bytes for the value shapes below; anything else
# (non-ASCII keys, integral or very large/small floats, subclasses) takes the exact path.
def _no_default(value: Any) -> Any:
    raise CanonicalError(f"type {type(value).__name__} has no canonical JSON form")


# The C encoder itself (what json.dumps builds on every call): no markers, compact
# separators, sorted keys, no skipping, NaN rejected.
_c_encoder = c_make_encoder(None, _no_default, encode_basestring, None, ":", ",", True, False, False)


def _json_encode(value: Any) -> str:
    return "".join(_c_encoder(value, 0))


def fast_canonical_bytes(value: Any) -> bytes:
    """`canonical_bytes(value)`, via the C encoder when that is provably the same bytes.

    `json.dumps(sort_keys, ensure_ascii=False, compact)` equals JCS when every key is an
    ASCII str (code-point order = UTF-16 order), every int is within ±(2^53-1), and every
    float is finite, non-integral and in [1e-4, 1e16) (where `repr` and ECMAScript both use
    plain decimal notation with the same shortest digits). Strings escape identically.
    """
    if _json_is_jcs(value):
        return _json_encode(value).encode("utf-8")
    return canonical_bytes(value)


def _json_is_jcs(value: Any) -> bool:
    t = type(value)
    if t is dict:
        try:
            if not "".join(value).isascii():  # also rejects non-str keys (TypeError)
                return False
        except TypeError:
            return False
        items = value.values()
    elif t is list or t is tuple:
        items = value
    else:
        return _scalar_is_jcs(value, t)
    for item in items:  # scalars inline: this runs once per payload member on every append
        t = type(item)
        if t is str or t is bool or item is None:
            continue
        if t is int:
            if -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                continue
            return False
        if t is float:
            if 1e-4 <= abs(item) < 1e16 and not item.is_integer():
                continue
            return False
        if not _json_is_jcs(item):
            return False
    return True


def _scalar_is_jcs(value: Any, t: type) -> bool:
    if t is str or t is bool or value is None:
        return True
    if t is int:
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    if t is float:
        return 1e-4 <= abs(value) < 1e16 and not value.is_integer()
    return False
