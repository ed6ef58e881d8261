"""The bundled datasets: scikit-learn's own files, read without importing scikit-learn."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fedgov import datasets


def test_breast_cancer_is_byte_for_byte_what_scikit_learn_loads() -> None:
    from sklearn.datasets import load_breast_cancer

    features, labels = datasets._breast_cancer()
    bunch = load_breast_cancer()
    assert features.dtype == bunch.data.dtype and features.tobytes() == bunch.data.tobytes()
    assert labels.dtype == bunch.target.dtype and labels.tobytes() == bunch.target.tobytes()


def test_digits_are_byte_for_byte_what_scikit_learn_loads() -> None:
    from sklearn.datasets import load_digits

    images, labels = datasets._digits()
    bunch = load_digits()
    assert images.shape == bunch.images.shape == (1797, 8, 8)
    assert images.dtype == bunch.images.dtype and images.tobytes() == bunch.images.tobytes()
    assert labels.dtype == bunch.target.dtype and labels.tobytes() == bunch.target.tobytes()


def test_loading_a_split_does_not_import_scikit_learn() -> None:
    code = ("import sys; from fedgov.datasets import load_split; pool, test = load_split('digits', 7); "
            "print(len(pool) + len(test), 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1797", "False"]


def test_a_missing_bundled_file_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    class Spec:
        origin = str(tmp_path / "sklearn" / "__init__.py")

    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: Spec())
    with pytest.raises(datasets.UsageError, match=r"scikit-learn's bundled breast_cancer.csv is missing: reinstall"):
        datasets._breast_cancer()


def test_the_split_is_seeded_and_the_features_standardised() -> None:
    pool, held_out = datasets.load_split("breast-cancer", 42)
    again, _ = datasets.load_split.__wrapped__("breast-cancer", 42)
    assert len(pool) + len(held_out) == 569 and np.array_equal(pool.x, again.x)
    whole = np.concatenate([pool.x, held_out.x])
    assert np.allclose(whole.mean(axis=0), 0, atol=1e-5) and np.allclose(whole.std(axis=0), 1, atol=1e-3)
