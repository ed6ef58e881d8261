"""Datasets that ship inside scikit-learn, so nothing is downloaded at run time.

The files are read where scikit-learn installed them, without importing it (see `_bundled`).

Each dataset is split once, by seed, into a pool that the partitioners share out to
nodes and a held-out test split that only the server evaluates on.
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from fedgov.catalog import DATASETS, check_dataset  # noqa: F401 - named here too, beside the loaders
from governance.errors import UsageError

HELD_OUT_FRACTION = 0.2


@dataclass(frozen=True)
class Dataset:
    """Features and labels of one split, with what a model needs to know of them."""

    name: str
    x: np.ndarray
    y: np.ndarray
    num_classes: int

    @property
    def num_features(self) -> int:
        return int(np.prod(self.x.shape[1:]))

    def __len__(self) -> int:
        return int(self.y.shape[0])


@lru_cache(maxsize=4)
def _load(name: str) -> tuple[np.ndarray, np.ndarray, int]:
    check_dataset(name)
    if name == "breast-cancer":
        raw, labels = _breast_cancer()
        x = raw.astype(np.float32)
        # Standardise with fixed statistics of the whole bundled set: a public, static
        # preprocessing step every node applies identically (no data is exchanged).
        x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)
        return x, labels.astype(np.int64), 2
    images, labels = _digits()
    x = (images.astype(np.float32) / 16.0)[:, None, :, :]  # N x 1 x 8 x 8
    return x, labels.astype(np.int64), 10


def _bundled(file: str) -> Path:
    """A data file scikit-learn ships, found without importing scikit-learn.

    Its import (SciPy with it) took 1.5-4 s in every process that loads a dataset: the
    coordinator, between the nodes registering and round 1, and each simulated node's actor.
    The files are read as `load_breast_cancer` and `load_digits` read them (a test compares).
    """
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / file if spec and spec.origin else None
    if path is None or not path.is_file():
        raise UsageError(f"scikit-learn's bundled {file} is missing: reinstall fedgov's dependencies (`make .venv`)")
    return path


def _breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of breast_cancer.csv: a header `samples,features,names…`, then one row per sample."""
    with _bundled("breast_cancer.csv").open(encoding="utf-8") as csv:
        samples, features = map(int, csv.readline().split(",")[:2])
        table = np.loadtxt(csv, delimiter=",", dtype=np.float64, ndmin=2)
    if table.shape != (samples, features + 1):
        raise UsageError(f"scikit-learn's bundled breast_cancer.csv holds {table.shape}, not {samples} x "
                         f"{features + 1}: reinstall fedgov's dependencies (`make .venv`)")
    return table[:, :features], table[:, features].astype(int)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """(8 x 8 images, labels) of digits.csv.gz: 64 pixels then the label on each row."""
    with gzip.open(_bundled("digits.csv.gz"), "rt") as csv:
        table = np.loadtxt(csv, delimiter=",", ndmin=2)
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)


@lru_cache(maxsize=8)
def load_split(name: str, seed: int) -> tuple[Dataset, Dataset]:
    """Return (pool, held_out): a seeded split of the bundled dataset."""
    x, y, num_classes = _load(name)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(len(y) * (1.0 - HELD_OUT_FRACTION))
    pool, test = order[:cut], order[cut:]
    return (
        Dataset(name, x[pool], y[pool], num_classes),
        Dataset(name, x[test], y[test], num_classes),
    )
