import hashlib
import struct

import numpy as np
import pytest

from governance.digests import DigestInputError, arrays_digest, metrics_digest, model_hash
from governance.errors import UsageError


def test_arrays_digest_matches_documented_byte_layout():
    a = np.arange(6, dtype="<f4").reshape(2, 3)
    data = a.tobytes()
    expected = (
        struct.pack(">I", 1) + b"w"
        + struct.pack(">I", 3) + b"<f4"
        + struct.pack(">I", 2) + struct.pack(">QQ", 2, 3)
        + struct.pack(">Q", len(data)) + data
    )
    assert arrays_digest([("w", a)]) == hashlib.sha256(expected).hexdigest()


def test_zero_dim_array_has_no_dims_and_one_item():
    a = np.array(7, dtype="<i8")
    expected = (
        struct.pack(">I", 1) + b"b" + struct.pack(">I", 3) + b"<i8"
        + struct.pack(">I", 0) + struct.pack(">Q", 8) + a.tobytes()
    )
    assert arrays_digest([("b", a)]) == hashlib.sha256(expected).hexdigest()


def test_big_endian_array_hashes_like_its_little_endian_equal():
    le = np.arange(5, dtype="<f8")
    assert arrays_digest([("x", le.astype(">f8"))]) == arrays_digest([("x", le)])


def test_non_contiguous_view_hashes_like_its_c_order_copy():
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    assert arrays_digest([("t", a.T)]) == arrays_digest([("t", np.ascontiguousarray(a.T))])


def test_array_order_changes_digest():
    a, b = np.zeros(2), np.ones(2)
    assert arrays_digest([("a", a), ("b", b)]) != arrays_digest([("b", b), ("a", a)])


def test_name_changes_digest():
    a = np.zeros(2)
    assert arrays_digest([("a", a)]) != arrays_digest([("b", a)])


def test_shape_changes_digest_with_same_bytes():
    a = np.arange(6.0)
    assert arrays_digest([("a", a)]) != arrays_digest([("a", a.reshape(2, 3))])


def test_dtype_changes_digest():
    assert arrays_digest([("a", np.zeros(2, np.float32))]) != arrays_digest([("a", np.zeros(2, np.int32))])


def test_single_value_change_changes_digest():
    a = np.zeros(100)
    b = a.copy()
    b[57] = 1e-12
    assert arrays_digest([("a", a)]) != arrays_digest([("a", b)])


def test_length_prefix_keeps_split_between_names_unambiguous():
    x = np.zeros(0, np.uint8)
    assert arrays_digest([("ab", x), ("c", x)]) != arrays_digest([("a", x), ("bc", x)])


def test_model_hash_is_arrays_digest():
    arrays = [("layer.weight", np.ones((2, 2), np.float32)), ("layer.bias", np.zeros(2, np.float32))]
    assert model_hash(arrays) == arrays_digest(arrays)


def test_object_array_is_refused_as_usage_error():
    with pytest.raises(DigestInputError, match="no canonical bytes"):
        arrays_digest([("o", np.array([object()], dtype=object))])
    assert issubclass(DigestInputError, UsageError)


def test_metrics_digest_ignores_key_order():
    assert metrics_digest({"loss": 0.5, "n": 10}) == metrics_digest({"n": 10, "loss": 0.5})


def test_metrics_digest_is_sha256_of_rfc8785_bytes():
    expected = hashlib.sha256(b'{"acc":0.25,"n":3,"split":"val"}').hexdigest()
    assert metrics_digest({"split": "val", "n": 3, "acc": 0.25}) == expected


def test_metrics_digest_refuses_non_scalar_values():
    with pytest.raises(DigestInputError, match="only int, float and str"):
        metrics_digest({"hist": [1, 2]})


def test_metrics_digest_refuses_nan():
    with pytest.raises(UsageError):
        metrics_digest({"loss": float("nan")})
