"""RFC 8785 JSON Canonicalization Scheme (JCS) for the JSON types the ledger uses.

Every hash and signature in the ledger covers bytes, never "a dict": JCS fixes those
bytes (sorted keys, no whitespace, ECMAScript number form, minimal string escapes),
so an independent verifier in any language re-derives them exactly.
"""

from __future__ import annotations

import math
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from governance.errors import UsageError

# I-JSON (RFC 7493): integers beyond this lose precision as IEEE doubles.
MAX_SAFE_INTEGER = 2**53 - 1


class CanonicalError(UsageError):
    """A value has no canonical JSON form (NaN, Infinity, a non-str key, an odd type)."""


def canonical_bytes(value: Any) -> bytes:
    """Return the JCS encoding of `value` as UTF-8 bytes."""
    return canonical_str(value).encode("utf-8")


def canonical_str(value: Any) -> str:
    """Return the JCS encoding of `value` as text."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(encode_basestring(value))
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise CanonicalError(f"integer {value} is outside the I-JSON safe range (±2^53-1)")
        out.append(str(value))
    elif isinstance(value, float):
        out.append(format_number(value))
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise CanonicalError(f"object key {key!r} is not a string")
        out.append("{")
        first = True
        # JCS sorts by UTF-16 code units, which differs from code points above U+FFFF.
        for key in sorted(value, key=lambda k: k.encode("utf-16-be")):
            if not first:
                out.append(",")
            first = False
            out.append(encode_basestring(key))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise CanonicalError(f"type {type(value).__name__} has no canonical JSON form")


def format_number(x: float) -> str:
    """Format a double as ECMAScript Number.prototype.toString does (RFC 8785 §3.2.2.3)."""
    if math.isnan(x) or math.isinf(x):
        raise CanonicalError("NaN and Infinity have no JSON form (RFC 8785)")
    if x == 0:
        return "0"  # also -0
    sign = "-" if x < 0 else ""
    text = repr(abs(x))  # shortest digits that round-trip, as ECMAScript requires
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    int_part, _, frac_part = mantissa.partition(".")
    digits = int_part + frac_part
    point = len(int_part) + exponent  # value = 0.<digits> * 10^point
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        exp = ("+" if e >= 0 else "-") + str(abs(e))
        body = digits + "e" + exp if k == 1 else digits[0] + "." + digits[1:] + "e" + exp
    return sign + body


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
