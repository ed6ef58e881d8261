"""RFC 8785 canonical JSON."""

import math

import pytest

from governance.verify.canonical import CanonicalError, canonical_bytes, canonical_str, format_number
from governance.verify.leaf import LEAF_FIELDS, leaf_bytes
import base64


def test_keys_are_sorted_by_utf16_code_units_and_whitespace_dropped() -> None:
    assert canonical_str({"b": 1, "a": [True, None], "\U0001f600": 0, "\ufb33": 0}) == \
        '{"a":[true,null],"b":1,"\U0001f600":0,"\ufb33":0}'


def test_strings_escape_only_quotes_backslash_and_controls() -> None:
    assert canonical_str("\u20ac\"\\\n\x01\x7f") == '"\u20ac\\"\\\\\\n\\u0001\x7f"'


@pytest.mark.parametrize("value, text", [
    (1.0, "1"), (-0.0, "0"), (0.1, "0.1"), (1e21, "1e+21"), (1e20, "100000000000000000000"),
    (1e-7, "1e-7"), (1e-6, "0.000001"), (123.456, "123.456"), (5e-324, "5e-324"),
    (1.7976931348623157e308, "1.7976931348623157e+308"), (333333333.3333333, "333333333.3333333"),
])
def test_floats_use_ecmascript_number_formatting(value: float, text: str) -> None:
    assert format_number(value) == text


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_rejected(bad: float) -> None:
    with pytest.raises(CanonicalError):
        canonical_str({"x": bad})


def test_integers_beyond_ijson_range_are_rejected() -> None:
    with pytest.raises(CanonicalError):
        canonical_str(2**53)


def test_fast_leaf_encoding_equals_generic_jcs() -> None:
    ct = bytes(range(40))
    values = {"ciphertext": base64.b64encode(ct).decode(), "config_hash": "c\u00e9", "entry_type": "t\n",
              "key_id": "k", "model_hash": "m\"", "node_id": "n", "round": 3, "run_id": "r",
              "seq": 7, "timestamp": "2025-01-01T00:00:00.000000Z"}
    assert set(values) == set(LEAF_FIELDS)
    fast = leaf_bytes(7, values["timestamp"], "t\n", "r", 3, "n", "m\"", "c\u00e9", "k", ct)
    assert fast == canonical_bytes(values)
    assert leaf_bytes(7, "t", "e", "r", None, "n", "", "", "k", b"").count(b'"round":null') == 1
