"""RFC 8785 (JCS) bytes via the C JSON encoder or per-batch templates, for the writer's hot path.

`fast_canonical_bytes(v) == canonical_bytes(v)`, `fast_canonical_str(v) == canonical_str(v)` and
`fast_canonical_many(vs) == [canonical_bytes(v) for v in vs]` always (governance/verify/canonical.py
is the definition); the fast paths are used only for the value shapes where that is provable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import chain, groupby, repeat
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from governance.verify.canonical import MAX_SAFE_INTEGER, CanonicalError, canonical_str


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
    """`canonical_bytes(value)`, via the C encoder when that is provably the same bytes (`fast_canonical_str`)."""
    return fast_canonical_str(value).encode("utf-8")


def fast_canonical_str(value: Any) -> str:
    """`canonical_str(value)`, via the C encoder when that is provably the same text.

    `json.dumps(sort_keys, ensure_ascii=False, compact)` equals JCS when every key is a plain
    ASCII str, no subclass (code-point order = UTF-16 order), every int is within ±(2^53-1), and every
    float is finite, non-integral and in [1e-4, 1e16) (where `repr` and ECMAScript both use
    plain decimal notation with the same shortest digits). Strings escape identically. A value
    that holds integral floats is encoded with them as ints, which JCS writes alike.
    """
    try:
        if _json_is_jcs(value):
            return _json_encode(value)
        as_ints = _integral_floats_as_ints(value)  # 0.0 and 3.0 are JCS's "0" and "3", repr's "0.0" and "3.0"
        if as_ints is not value and _json_is_jcs(as_ints):
            return _json_encode(as_ints)
    except RecursionError:  # the walks take more stack per level than canonical_str: its answer, or its error
        pass
    return canonical_str(value)


def _integral_floats_as_ints(value: Any) -> Any:
    """`value` with each integral float within ±(2^53-1) as the int it equals, or `value` itself if none is.

    JCS writes such a float exactly as that int (ECMAScript prints integral doubles below 1e21
    without a fraction or exponent; -0.0 as "0"). Only plain dicts, lists and tuples are walked:
    anything else stays as it is, for `_json_is_jcs` to judge.
    """
    t = type(value)
    if t is float:
        return int(value) if value.is_integer() and abs(value) <= MAX_SAFE_INTEGER else value
    if t is dict:
        if _FLAT.issuperset(map(type, value.values())):  # a C-level look: nothing in it to convert
            return value
        items = {key: _integral_floats_as_ints(item) for key, item in value.items()}
        return items if any(items[key] is not item for key, item in value.items()) else value
    if t is list or t is tuple:
        if _FLAT.issuperset(map(type, value)):
            return value
        converted = [_integral_floats_as_ints(item) for item in value]
        return converted if any(new is not old for new, old in zip(converted, value)) else value
    return value


_STR = frozenset({str})
_FLAT = frozenset({str, int, bool, type(None)})  # what `_integral_floats_as_ints` leaves as it is, unwalked


def _json_is_jcs(value: Any) -> bool:
    t = type(value)
    if t is dict:
        if not _STR.issuperset(map(type, value)):  # plain str keys only: a subclass may compare or encode its own way
            return False
        if not "".join(value).isascii():
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


# A run of at least this many consecutive payloads with the same members goes through one template.
TEMPLATE_MIN_RUN = 8


def fast_canonical_many(payloads: Sequence[dict[str, Any]]) -> list[bytes]:
    """`[canonical_bytes(p) for p in payloads]`, a batch's payload dicts at once.

    A bulk append's payloads mostly share their members (`{"i", "loss", "n_samples"}`, say).
    A run of such dicts is encoded through one template: the sorted member names written
    once, each member's values converted column by column by a C-level `map` (`int.__repr__`,
    `float.__repr__`, `encode_basestring`), with the shape checks of `fast_canonical_bytes`
    made once per column. A column whose values are not all of one plain JSON scalar type
    sends its run to `fast_canonical_bytes`, one payload at a time.
    """
    out: list[bytes] = []
    for shape, run in groupby(payloads, key=tuple):  # consecutive dicts with the same member names, in order
        run = list(run)
        encoded = _template_run(shape, run) if len(run) >= TEMPLATE_MIN_RUN else None
        out.extend(map(fast_canonical_bytes, run) if encoded is None else encoded)
    return out


def _template_run(shape: tuple[Any, ...], run: list[dict[str, Any]]) -> list[bytes] | None:
    """The JCS bytes of dicts that all have the members `shape`, or None when a column is not plain."""
    if not shape or set(map(type, run)) != {dict}:
        return None
    if set(map(type, chain.from_iterable(run))) != {str}:  # plain str names in every dict, not just equal ones
        return None
    if not "".join(shape).isascii():  # ASCII names: code-point order is UTF-16 order
        return None
    names = sorted(shape)
    specs, converted = [], []
    for name in names:
        form = _column_form(list(map(dict.__getitem__, run, repeat(name))))
        if form is None:
            return None
        specs.append(form[0])
        if form[1] is not None:  # null needs no value
            converted.append(form[1])
    template = "{" + ",".join(encode_basestring(name).replace("%", "%%") + ":" + spec
                              for name, spec in zip(names, specs)) + "}"
    args = zip(*converted) if converted else repeat((), len(run))  # every member null: nothing to format
    return list(map(str.encode, map(template.__mod__, args)))


def _column_form(column: list[Any]) -> tuple[str, Iterable[Any] | None] | None:
    """(a %-format, the values it formats) giving each value's JCS text, when every value is of one plain
    scalar type that has a provable fast form. Ints and floats are formatted in place (`%d`, `%r`): their
    `repr` without a string made per value first."""
    kinds = set(map(type, column))
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    if kind is str:
        return "%s", map(encode_basestring, column)
    if kind is int:
        return ("%d", column) if max(map(abs, column)) <= MAX_SAFE_INTEGER else None
    if kind is float:  # as in fast_canonical_bytes: repr's plain decimal form is ECMAScript's only here
        if (all(map(math.isfinite, column)) and 1e-4 <= min(map(abs, column)) and max(map(abs, column)) < 1e16
                and not any(map(float.is_integer, column))):
            return "%r", column
        return None
    if kind is bool:
        return "%s", map(_BOOL_TEXT.__getitem__, column)
    if kind is type(None):
        return "null", None
    return None


_BOOL_TEXT: dict[bool, str] = {True: "true", False: "false"}
