"""Datasets that ship inside scikit-learn, so nothing is downloaded at run time.

Each dataset is split once, by seed, into a pool that the partitioners share out to
nodes and a held-out test split that only the server evaluates on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fedgov.catalog import DATASETS, check_dataset  # noqa: F401 - named here too, beside the loaders

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
    from sklearn import datasets as skd

    if name == "breast-cancer":
        bunch = skd.load_breast_cancer()
        x = bunch.data.astype(np.float32)
        # Standardise with fixed statistics of the whole bundled set: a public, static
        # preprocessing step every node applies identically (no data is exchanged).
        x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)
        return x, bunch.target.astype(np.int64), 2
    bunch = skd.load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]  # N x 1 x 8 x 8
    return x, bunch.target.astype(np.int64), 10


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
