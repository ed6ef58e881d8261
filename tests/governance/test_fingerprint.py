import hashlib
import json
import time

import numpy as np
import pytest

from governance.errors import UsageError, VerificationError
from governance.fingerprint import (
    DatasetFingerprint,
    FingerprintInputError,
    FingerprintMismatchError,
    fingerprint_arrays,
)


def data(n=50, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, 3, size=n)


def test_row_order_does_not_change_fingerprint():
    x, y = data()
    perm = np.random.default_rng(1).permutation(len(y))
    assert fingerprint_arrays(x[perm], y[perm]) == fingerprint_arrays(x, y)


def test_single_feature_change_changes_content_hash_and_digest():
    x, y = data()
    x2 = x.copy()
    x2[17, 2] += 1e-9
    a, b = fingerprint_arrays(x, y), fingerprint_arrays(x2, y)
    assert a.content_hash != b.content_hash and a.digest != b.digest


def test_single_label_change_changes_content_hash():
    x, y = data()
    y2 = y.copy()
    y2[3] = (y2[3] + 1) % 3
    assert fingerprint_arrays(x, y).content_hash != fingerprint_arrays(x, y2).content_hash


def test_swapping_labels_between_rows_changes_content_hash():
    x = np.array([[0.0], [1.0]])
    assert fingerprint_arrays(x, np.array([0, 1])).content_hash != fingerprint_arrays(x, np.array([1, 0])).content_hash


def test_duplicate_row_counts():
    x, y = data()
    x2, y2 = np.vstack([x, x[:1]]), np.concatenate([y, y[:1]])
    assert fingerprint_arrays(x, y).content_hash != fingerprint_arrays(x2, y2).content_hash


def test_dtype_change_changes_schema_hash():
    x, y = data()
    assert fingerprint_arrays(x, y).schema_hash != fingerprint_arrays(x.astype(np.float32), y).schema_hash


def test_column_names_change_schema_hash_not_content_hash():
    x, y = data(d=2)
    a = fingerprint_arrays(x, y, columns=["age", "bmi"])
    b = fingerprint_arrays(x, y, columns=["age", "weight"])
    assert a.schema_hash != b.schema_hash and a.content_hash == b.content_hash


def test_feature_shape_change_changes_schema_hash():
    x, y = data(d=4)
    assert fingerprint_arrays(x, y).schema_hash != fingerprint_arrays(x.reshape(-1, 2, 2), y).schema_hash


def test_byte_order_of_input_does_not_change_fingerprint():
    x, y = data()
    assert fingerprint_arrays(x.astype(">f8"), y.astype(">i8")) == fingerprint_arrays(x, y)


def test_rows_are_reported_and_label_counts_are_not():
    """Version 2: the label distribution travels only in the privacy-filtered summary, never exact here."""
    x = np.zeros((5, 2))
    fp = fingerprint_arrays(x, np.array([1, 0, 1, 1, 2]))
    assert fp.rows == 5 and fp.label_counts is None and fp.format == "fedgov.dataset-fingerprint.v2"


def test_to_dict_holds_no_rows_only_hashes_and_the_row_count():
    x, y = data()
    assert set(fingerprint_arrays(x, y).to_dict()) == {"content_hash", "schema_hash", "rows", "digest"}


def test_the_digest_binds_the_format_and_the_three_fields():
    fp = fingerprint_arrays(*data())
    body = {"content_hash": fp.content_hash, "format": "fedgov.dataset-fingerprint.v2", "rows": fp.rows,
            "schema_hash": fp.schema_hash}
    assert fp.digest == hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def test_a_version_1_fingerprint_with_label_counts_is_still_read_and_its_digest_checked():
    """A node of an earlier fedgov, and replies in older ledgers: the digest binds the counts and the v1 format."""
    fp = fingerprint_arrays(*data())
    counts = {"0": 60, "1": 40}
    body = {"content_hash": fp.content_hash, "format": "fedgov.dataset-fingerprint.v1", "label_counts": counts,
            "rows": fp.rows, "schema_hash": fp.schema_hash}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    stored = {"content_hash": fp.content_hash, "schema_hash": fp.schema_hash, "rows": fp.rows,
              "label_counts": counts, "digest": digest}
    old = DatasetFingerprint.from_dict(stored)
    assert old.label_counts == counts and old.digest == digest and old.to_dict() == stored
    with pytest.raises(FingerprintMismatchError):
        DatasetFingerprint.from_dict({**stored, "label_counts": {"0": 61, "1": 39}})


def test_from_dict_round_trips():
    fp = fingerprint_arrays(*data())
    assert DatasetFingerprint.from_dict(fp.to_dict()) == fp


def test_from_dict_with_tampered_count_fails_digest_check():
    stored = fingerprint_arrays(*data()).to_dict()
    stored["rows"] += 1
    with pytest.raises(FingerprintMismatchError):
        DatasetFingerprint.from_dict(stored)
    assert issubclass(FingerprintMismatchError, VerificationError)


def test_empty_dataset_has_a_fingerprint():
    fp = fingerprint_arrays(np.zeros((0, 3)), np.zeros(0, dtype=np.int64))
    assert fp.rows == 0 and len(fp.digest) == 64


def test_mismatched_row_counts_are_refused():
    with pytest.raises(FingerprintInputError, match="features must be"):
        fingerprint_arrays(np.zeros((3, 2)), np.zeros(4))


def test_wrong_number_of_column_names_is_refused():
    with pytest.raises(FingerprintInputError, match="3 column names"):
        fingerprint_arrays(np.zeros((3, 2)), np.zeros(3), columns=["a", "b", "c"])


def test_object_features_are_refused_as_usage_error():
    with pytest.raises(UsageError):
        fingerprint_arrays(np.array([[object()]], dtype=object), np.zeros(1))


def test_100k_rows_by_30_features_fingerprints_within_two_seconds():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(100_000, 30)), rng.integers(0, 2, size=100_000)
    start = time.perf_counter()
    fingerprint_arrays(x, y)
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("edit", [{"rows": True}, {"rows": "91"}, {"rows": -1}, {"rows": 91.0},
                                  {"content_hash": {"x": 1}}, {"label_counts": None}, {"label_counts": {"0": True}},
                                  {"rows": float("inf")}])
def test_a_fingerprint_of_the_wrong_types_is_malformed_not_converted(edit):
    """A node's fingerprint is hostile input: a row count that is not a whole number, or a hash that is not text, is
    refused by name rather than converted (True read as 1, "91" as 91)."""
    with pytest.raises(FingerprintInputError, match="malformed dataset fingerprint"):
        DatasetFingerprint.from_dict({**fingerprint_arrays(*data()).to_dict(), **edit})
