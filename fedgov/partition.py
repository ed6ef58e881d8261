"""Partitioners that share a dataset pool out to simulated nodes, deterministically by seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from governance.errors import UsageError
from fedgov.catalog import PARTITIONS, check_partition  # noqa: F401 - named here too, beside the partitioners
from fedgov.datasets import Dataset, load_split

LOCAL_TEST_FRACTION = 0.2


def iid_indices(num_rows: int, num_partitions: int, seed: int) -> list[np.ndarray]:
    """Shuffle once and deal rows out in near-equal shares."""
    order = np.random.default_rng(seed).permutation(num_rows)
    return [np.sort(part) for part in np.array_split(order, num_partitions)]


def dirichlet_indices(
    labels: np.ndarray, num_partitions: int, alpha: float, seed: int
) -> list[np.ndarray]:
    """Label-skewed split: each class is shared out by Dirichlet(alpha) proportions.

    Small alpha gives each node few classes; large alpha tends to IID. Every node gets at
    least one row, so no simulated node starts with an empty dataset.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(num_partitions)]
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        shares = rng.dirichlet(np.full(num_partitions, alpha))
        cuts = (np.cumsum(shares)[:-1] * len(rows)).astype(int)
        for node, chunk in enumerate(np.split(rows, cuts)):
            parts[node].extend(chunk.tolist())
    # Top up empty partitions from the largest ones so that every node can train.
    for node in range(num_partitions):
        while not parts[node]:
            donor = max(range(num_partitions), key=lambda i: len(parts[i]))
            parts[node].append(parts[donor].pop())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


@dataclass(frozen=True)
class Partition:
    """One node's own data: its train split and its local test split."""

    partition_id: int
    indices: np.ndarray  # row indices into the shared pool, for provenance checks
    train: Dataset
    test: Dataset


def load_partition(
    dataset: str,
    partition_id: int,
    num_partitions: int,
    partitioner: str = "iid",
    alpha: float = 0.5,
    seed: int = 42,
) -> Partition:
    """Load the rows of one node, deterministic for the same arguments."""
    check_partition(partitioner, alpha)
    if not 0 <= partition_id < num_partitions:
        raise UsageError(f"partition-id {partition_id} outside 0..{num_partitions - 1}")
    pool, _ = load_split(dataset, seed)
    # More nodes than rows: nodes share the rows round-robin, so each still holds one.
    slots = min(num_partitions, len(pool))
    slot = partition_id % slots
    if partitioner == "iid":
        indices = iid_indices(len(pool), slots, seed)[slot]
    else:
        indices = dirichlet_indices(pool.y, slots, alpha, seed)[slot]
    x, y = pool.x[indices], pool.y[indices]
    order = np.random.default_rng(seed + partition_id).permutation(len(y))
    cut = max(1, int(round(len(y) * (1.0 - LOCAL_TEST_FRACTION)))) if len(y) > 1 else len(y)
    tr, te = order[:cut], order[cut:]
    return Partition(
        partition_id,
        indices,
        Dataset(dataset, x[tr], y[tr], pool.num_classes),
        Dataset(dataset, x[te], y[te], pool.num_classes),
    )


def split_local(data: Dataset, seed: int) -> Partition:
    """A site's own rows as a partition: a seeded train split and a local test split, as for bundled data."""
    order = np.random.default_rng(seed).permutation(len(data))
    cut = max(1, int(round(len(data) * (1.0 - LOCAL_TEST_FRACTION)))) if len(data) > 1 else len(data)
    tr, te = order[:cut], order[cut:]
    return Partition(0, np.arange(len(data)),
                     Dataset(data.name, data.x[tr], data.y[tr], data.num_classes),
                     Dataset(data.name, data.x[te], data.y[te], data.num_classes))
