"""RFC 8785 JSON Canonicalization Scheme (JCS) for the JSON types the ledger uses.

Every hash and signature covers bytes, never "a dict": JCS fixes them (sorted keys, no
whitespace, ECMAScript numbers, minimal escapes), so a verifier in any language agrees.
"""

from __future__ import annotations

import math
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

from governance.verify.errors import UsageError

MAX_SAFE_INTEGER = 2**53 - 1  # I-JSON (RFC 7493): integers beyond this lose precision as IEEE doubles


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
    if value is None or value is True or value is False:
        out.append({None: "null", True: "true", False: "false"}[value])
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
        # JCS sorts by UTF-16 code units, which differs from code points above U+FFFF.
        for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be"))):
            out.append("," if i else "")
            out.append(encode_basestring(key) + ":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            out.append("," if i else "")
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
    mantissa, _, exp_text = repr(abs(x)).partition("e")  # repr: the shortest digits that round-trip
    int_part, _, frac_part = mantissa.partition(".")
    digits = int_part + frac_part
    point = len(int_part) + (int(exp_text) if exp_text else 0)  # value = 0.<digits> * 10^point
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    exp = ("+" if n - 1 >= 0 else "-") + str(abs(n - 1))
    return sign + (digits if k == 1 else digits[0] + "." + digits[1:]) + "e" + exp
