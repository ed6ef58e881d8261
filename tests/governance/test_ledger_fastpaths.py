"""The fast encoders and batch tree code must give byte-identical results to the reference ones."""

from __future__ import annotations

import math
import os
import random

import pytest

from governance.ledger.envelope import entry_aad, entry_aad_prefix
from governance.ledger.fast_canonical import (TEMPLATE_MIN_RUN, _template_run, fast_canonical_bytes, fast_canonical_many,
                                               fast_canonical_str)
from governance.verify.canonical import CanonicalError, canonical_bytes, canonical_str
from governance.verify.leaf import LeafEncoder, leaf_bytes
from governance.verify.merkle import Frontier

EDGE_FLOATS = [0.0, -0.0, 1.0, -3.0, 0.1, 1e-4, 9.999e-5, 1e-7, 1e16, 9999999999999998.0, 1e21, 1e22,
               123456789012345.67, 5e-324, 1.7976931348623157e308, 0.1234,
               9007199254740991.0, 9007199254740992.0, -9007199254740991.0]


def _random_string(rng: random.Random) -> str:
    ranges = [(0, 0x7F), (0x80, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
    return "".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(rng.randint(0, 5)))


def _random_value(rng: random.Random, depth: int = 0):
    kind = rng.randint(0, 7 if depth < 3 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([rng.randint(-99999, 99999), rng.randint(-2**54, 2**54)])
    if kind == 2:
        return rng.choice([rng.uniform(-1e3, 1e3), float(rng.randint(-9, 9)), rng.choice(EDGE_FLOATS),
                           math.ldexp(rng.random(), rng.randint(-80, 80))])
    if kind in (3, 4, 5):
        return _random_string(rng)
    if kind == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {(_random_string(rng) if rng.random() < 0.3 else f"k{rng.randint(0, 40)}"): _random_value(rng, depth + 1)
            for _ in range(rng.randint(0, 4))}


def _encoded_or_error(encode, value) -> bytes | str:
    try:
        return encode(value)
    except CanonicalError:
        return "rejected"


def test_fast_canonical_bytes_equal_jcs_for_random_payloads() -> None:
    rng = random.Random(8785)
    for _ in range(20000):
        value = {"payload": _random_value(rng)}
        assert _encoded_or_error(fast_canonical_bytes, value) == _encoded_or_error(canonical_bytes, value), value


@pytest.mark.parametrize("value", EDGE_FLOATS + [math.nan, math.inf, 2**53, -(2**53), "\u007f\u2028\x1f"])
def test_fast_canonical_bytes_equal_jcs_at_number_and_string_edges(value: object) -> None:
    assert _encoded_or_error(fast_canonical_bytes, [value]) == _encoded_or_error(canonical_bytes, [value])


def test_integral_floats_take_the_c_encoder_as_the_ints_jcs_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    import governance.ledger.fast_canonical as fast

    value = {"noise": {"kind": "none", "scale": 0.0}, "counts": [3.0, -0.0, 2.5], "rows": (12, 1e3)}
    want = canonical_bytes(value)
    assert want == b'{"counts":[3,0,2.5],"noise":{"kind":"none","scale":0},"rows":[12,1000]}'
    monkeypatch.setattr(fast, "canonical_str", lambda v: pytest.fail("took the exact path"))
    assert fast.fast_canonical_bytes(value) == want


@pytest.mark.parametrize("leaf", [1.0, -0.0, 1e-05, 1.5, 2**60])
@pytest.mark.parametrize("depth", [498, 700])
def test_deep_values_get_canonical_strs_answer_not_a_recursion_error(leaf: object, depth: int) -> None:
    # An attacker found the integral-float walk overflowing the stack at half canonical_str's depth.
    value: object = leaf
    for _ in range(depth):
        value = [value]
    assert _encoded_or_error(fast_canonical_str, value) == _encoded_or_error(canonical_str, value)


class _ReversedKey(str):
    def __lt__(self, other: object) -> bool:
        return str.__gt__(self, other)


class _OwnEncoding(str):
    def encode(self, *args: object) -> bytes:
        return str.encode(str(self)[::-1], *args)


@pytest.mark.parametrize("value", [{_ReversedKey("a"): 1, _ReversedKey("b"): 2},
                                   {_ReversedKey("a"): 1.0, _ReversedKey("b"): 2.5},
                                   {"outer": {_ReversedKey("x"): 1, _ReversedKey("y"): 0.0}},
                                   {_OwnEncoding("b"): 1, _OwnEncoding("a"): 2}])
def test_str_subclass_keys_take_the_exact_path(value: dict) -> None:
    # An attacker found the C encoder sorting such keys by their own comparison where JCS sorts their UTF-16 units.
    assert fast_canonical_str(value) == canonical_str(value)
    assert fast_canonical_bytes(value) == canonical_bytes(value)


def test_fast_canonical_bytes_sort_astral_keys_by_utf16_units() -> None:
    value = {"\ufb01": 1, "\U0001f600": 2}
    assert fast_canonical_bytes(value) == canonical_bytes(value) == '{"\U0001f600":2,"\ufb01":1}'.encode()


def test_leaf_encoder_equals_leaf_bytes_for_random_rows() -> None:
    rng = random.Random(9162)
    encode = LeafEncoder()
    for _ in range(5000):
        row = (rng.randint(0, 2**40), _random_string(rng), rng.choice(["t", _random_string(rng)]), _random_string(rng),
               rng.choice([None, 0, 7, -1]), rng.choice(["n1", _random_string(rng)]), _random_string(rng), "",
               os.urandom(16).hex(), os.urandom(rng.randint(0, 90)))
        assert encode(*row) == leaf_bytes(*row)


def test_leaf_encoder_rejects_a_non_integer_round_even_when_an_equal_int_is_cached() -> None:
    encode = LeafEncoder()
    encode(1, "ts", "t", "r", 1, "n", "", "", "k", b"")
    with pytest.raises(TypeError):
        encode(2, "ts", "t", "r", 1.0, "n", "", "", "k", b"")


def test_entry_aad_prefix_plus_seq_is_the_entry_aad() -> None:
    for seq in (0, 7, 10**12):
        assert entry_aad_prefix("lid", "update_received", "ab" * 16) + b"%d}" % seq \
            == entry_aad("lid", seq, "update_received", "ab" * 16)


def test_frontier_extend_in_batches_matches_leaf_by_leaf_from_any_start() -> None:
    rng = random.Random(2)
    for _ in range(200):
        leaves = [os.urandom(32) for _ in range(rng.randint(0, 300))]
        start = rng.randint(0, len(leaves))
        one, batch = Frontier(), Frontier()
        one_nodes = [n for leaf in leaves for n in one.extend([leaf])]
        batch_nodes = [n for leaf in leaves[:start] for n in batch.extend([leaf])]
        cut = start
        while cut < len(leaves):
            step = rng.randint(1, 70)
            batch_nodes += batch.extend(leaves[cut:cut + step])
            cut += step
        assert (batch.size, batch.root(), sorted(batch_nodes)) == (one.size, one.root(), sorted(one_nodes))


def _payload_batches(rng: random.Random):
    """Batches with runs of same-shaped payloads (the template path) mixed with odd ones (the per-payload path)."""
    for _ in range(1500):
        names = [rng.choice(["i", "loss", "n", "%s", "é", "k\u2028", _random_string(rng)]) for _ in range(rng.randint(0, 4))]
        kind = rng.randint(0, 4)
        batch = []
        for _ in range(rng.randint(0, 40)):
            if rng.random() < 0.08:
                batch.append({"payload": _random_value(rng)} if rng.random() < 0.8 else {"a": {"b": [1.5, None]}})
                continue
            if kind == 0:
                batch.append({k: _random_value(rng) for k in names})
            elif kind == 1:
                batch.append({k: rng.choice([rng.randint(-10**6, 10**6), 2**53 - 1, -(2**53 - 1), 2**53, True])
                              for k in names})
            elif kind == 2:
                batch.append({k: rng.choice([0.1234, rng.uniform(-1e3, 1e3), 1e-4, 9.999e-5, 1e16, 2.0, math.nan,
                                             123456789012345.67]) for k in names})
            elif kind == 3:
                batch.append({k: rng.choice(["a", "é\u2028\x1f\"%s\\", "%d", _random_string(rng)]) for k in names})
            else:
                batch.append({k: rng.choice([None, True, False]) for k in names})
        yield batch


def test_fast_canonical_many_equals_jcs_for_batches_of_payloads() -> None:
    rng = random.Random(13)
    templated = 0
    for batch in _payload_batches(rng):
        try:
            want = [canonical_bytes(p) for p in batch]
        except CanonicalError:
            with pytest.raises(CanonicalError):
                fast_canonical_many(batch)
            continue
        assert fast_canonical_many(batch) == want, batch
        templated += any(_template_run(tuple(p), [p] * TEMPLATE_MIN_RUN) is not None for p in batch)
    assert templated > 300  # the template path itself was exercised, not only the per-payload one


def test_fast_canonical_many_takes_no_template_for_lookalike_members() -> None:
    class Name(str):
        pass

    class Count(int):
        pass

    plain = [{"a": 1, "b": 0.5}] * TEMPLATE_MIN_RUN
    assert _template_run(("a", "b"), plain) is not None
    odd_name = plain[:-1] + [{Name("a"): 1, "b": 0.5}]
    odd_value = plain[:-1] + [{"a": Count(1), "b": 0.5}]
    mixed = plain[:-1] + [{"a": 1.5, "b": 0.5}]
    for batch in (odd_name, odd_value, mixed):
        assert _template_run(("a", "b"), batch) is None
        assert fast_canonical_many(batch) == [canonical_bytes(p) for p in batch]


def test_fast_canonical_many_encodes_a_run_whose_every_member_is_null() -> None:
    # The template then formats no value at all: each payload must still come out, once.
    batch = [{"a": None, "b": None}] * TEMPLATE_MIN_RUN + [{"a": None}] * TEMPLATE_MIN_RUN + [{"c": 1}]
    assert _template_run(("a", "b"), batch[:TEMPLATE_MIN_RUN]) is not None
    assert fast_canonical_many(batch) == [canonical_bytes(p) for p in batch]


def test_leaf_parts_refuse_a_non_integer_round_even_when_an_equal_int_is_cached() -> None:
    encoder = LeafEncoder()
    encoder.parts("2026-11-30T00:00:00Z", "t", "r", 1, "n", "", "", "k")
    with pytest.raises(TypeError, match="integers"):
        encoder.parts("2026-11-30T00:00:00Z", "t", "r", True, "n", "", "", "k")
