"""The bundled datasets and the partitioners, by name, and the checks of a run's choice of them.

Apart from `fedgov.datasets` and `fedgov.partition` because it imports no numpy: `fedgov sim
run` checks the settings before it starts its engine, and every module the launcher loads first
delays the engine (numpy alone is about 0.15 s).
"""

from __future__ import annotations

import math

from governance.errors import UsageError

DATASETS = ("breast-cancer", "digits")
PARTITIONS = ("iid", "dirichlet")


def check_dataset(name: str) -> None:
    """Fail with one clear line when the dataset is unknown."""
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")


def check_partition(name: str, alpha: float) -> None:
    """Fail with one clear line on an unknown partitioner or a non-positive alpha."""
    if name not in PARTITIONS:
        raise UsageError(f"unknown partition {name!r}: choose one of {', '.join(PARTITIONS)}")
    if not 0 < alpha < math.inf:
        raise UsageError(f"--alpha must be a finite number > 0 (Dirichlet concentration), got {alpha}")
