"""Partitioners: deterministic by seed, each node's data its own, label skew on demand."""

import numpy as np
import pytest

from governance.errors import UsageError
from fedgov.datasets import load_split
from fedgov.partition import check_partition, load_partition


def test_iid_partitions_are_disjoint_and_cover_the_pool():
    parts = [load_partition("breast-cancer", i, 10) for i in range(10)]
    indices = np.concatenate([p.indices for p in parts])
    pool, _ = load_split("breast-cancer", 42)
    assert len(indices) == len(set(indices.tolist())) == len(pool)


def test_same_seed_gives_the_same_partition():
    a = load_partition("digits", 3, 8, "dirichlet", 0.3, seed=7)
    b = load_partition("digits", 3, 8, "dirichlet", 0.3, seed=7)
    assert np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.train.x, b.train.x)


def test_another_seed_gives_another_partition():
    a = load_partition("digits", 3, 8, seed=7)
    b = load_partition("digits", 3, 8, seed=8)
    assert not np.array_equal(a.indices, b.indices)


def test_each_partition_holds_its_own_train_and_test_split():
    part = load_partition("breast-cancer", 0, 4)
    assert len(part.train) + len(part.test) == len(part.indices)
    assert len(part.test) > 0


def test_dirichlet_with_small_alpha_skews_labels_more_than_iid():
    def mean_classes(partitioner: str, alpha: float) -> float:
        parts = [load_partition("digits", i, 10, partitioner, alpha) for i in range(10)]
        return float(np.mean([len(np.unique(p.train.y)) for p in parts]))

    assert mean_classes("dirichlet", 0.1) < mean_classes("iid", 1.0) - 3


def test_dirichlet_gives_every_node_at_least_one_row():
    parts = [load_partition("breast-cancer", i, 50, "dirichlet", 0.05) for i in range(50)]
    assert min(len(p.indices) for p in parts) >= 1


def test_more_nodes_than_rows_still_gives_each_node_a_row():
    pool, _ = load_split("breast-cancer", 42)
    part = load_partition("breast-cancer", len(pool) + 5, len(pool) + 10)
    assert len(part.train) == 1


def test_held_out_split_is_disjoint_from_the_pool():
    pool, held_out = load_split("breast-cancer", 42)
    rows = {r.tobytes() for r in pool.x}
    assert not any(r.tobytes() in rows for r in held_out.x)


@pytest.mark.parametrize("name,alpha,message", [
    ("shards", 0.5, "unknown partition 'shards'"),
    ("dirichlet", 0.0, "--alpha must be a finite number > 0"),
    ("dirichlet", -1.0, "--alpha must be a finite number > 0"),
])
def test_bad_partition_arguments_are_refused(name, alpha, message):
    with pytest.raises(UsageError, match=message):
        check_partition(name, alpha)
