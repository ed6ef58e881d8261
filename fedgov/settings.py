"""Run settings: the run config of `[tool.flwr.app.config]`, parsed and checked once.

The CLI checks the same settings before it starts Ray, so bad input fails in a second with
one clear line instead of inside a running simulation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from governance.errors import UsageError
from governance.names import MAX_PURPOSE, check_name
from fedgov.datasets import check_dataset
from fedgov.partition import check_partition

STRATEGIES = ("fedavg", "fedprox", "fedadam", "fedtrimmedavg", "krum", "fedmedian")
DEVICES = ("cpu", "cuda")


MAX_NODES = 100_000
MAX_ROUNDS = 100_000
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds


@dataclass(frozen=True)
class RunSettings:
    """Every key of the app's run config, typed. Field names are the keys with `_`."""

    num_server_rounds: int = 3
    dataset: str = "breast-cancer"
    partition: str = "iid"
    alpha: float = 0.5
    num_partitions: int = 10
    strategy: str = "fedavg"
    fraction_train: float = 1.0
    min_valid_replies: int = 1
    seed: int = 42
    local_epochs: int = 2
    batch_size: int = 16
    lr: float = 0.05
    proximal_mu: float = 0.01
    fedadam_eta: float = 0.01
    trimmed_beta: float = 0.2
    krum_byzantine: int = 0
    device: str = "cpu"
    registration_timeout: float = 120.0
    round_timeout: float = 3600.0
    out_dir: str = ""
    faults: str = ""
    trace_dir: str = ""
    workspace: str = ""
    purpose: str = "simulation"
    operator: str = "operator"
    sim_root: str = ""
    revoke: str = ""
    drift: str = ""
    enrollment_gate: str = ""

    @classmethod
    def from_run_config(cls, config: Mapping[str, Any]) -> "RunSettings":
        """Build from a Flower run config (dash-separated keys), then check."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = f.name.replace("_", "-")
            if key in config:
                kind, value = type(f.default), config[key]
                if kind is int and isinstance(value, float) and not value.is_integer():
                    raise UsageError(f"run config {key} must be a whole number, got {value}")
                try:
                    values[f.name] = kind(value)
                except (TypeError, ValueError):
                    raise UsageError(f"run config {key} must be a {kind.__name__}, got {value!r}") from None
        settings = cls(**values)
        settings.check()
        return settings

    def to_run_config(self) -> dict[str, Any]:
        """The dash-separated run config Flower passes to ServerApp and ClientApps."""
        return {k.replace("_", "-"): v for k, v in asdict(self).items()}

    def min_nodes(self) -> int:
        """The fewest nodes a round of this strategy can aggregate."""
        if self.strategy == "krum":
            return 2 * self.krum_byzantine + 3
        if self.strategy == "fedtrimmedavg":
            return 3
        return 2

    def aggregation_minimum(self) -> int:
        """Valid replies a round needs: robust aggregators (Krum, trimmed mean) keep their
        guarantee only with their minimum; averaging needs `min-valid-replies`."""
        if self.strategy in ("krum", "fedtrimmedavg"):
            return max(self.min_valid_replies, self.min_nodes())
        return self.min_valid_replies

    def check(self) -> None:
        """Raise UsageError naming the first bad setting and how to fix it."""
        check_dataset(self.dataset)
        check_partition(self.partition, self.alpha)
        if self.strategy not in STRATEGIES:
            raise UsageError(
                f"unknown strategy {self.strategy!r}: choose one of {', '.join(STRATEGIES)}"
            )
        if not 0.0 < self.fraction_train <= 1.0:
            raise UsageError(f"--fraction must be in (0, 1], got {self.fraction_train}")
        if not 1 <= self.num_server_rounds <= MAX_ROUNDS:
            raise UsageError(f"--rounds must be between 1 and {MAX_ROUNDS}, got {self.num_server_rounds}")
        if not 1 <= self.num_partitions <= MAX_NODES:
            raise UsageError(f"--nodes must be between 1 and {MAX_NODES}, got {self.num_partitions}")
        if not 0 <= self.seed <= MAX_SEED:
            raise UsageError(f"--seed must be a whole number from 0 to {MAX_SEED} (what numpy and torch take), "
                             f"got {self.seed}")
        if self.num_partitions < self.min_nodes():
            raise UsageError(
                f"--nodes {self.num_partitions} is below the minimum of {self.min_nodes()} "
                f"nodes for strategy {self.strategy}"
            )
        if self.krum_byzantine < 0 or not 0.0 <= self.trimmed_beta < 0.5:
            raise UsageError("krum-byzantine must be >= 0 and trimmed-beta in [0, 0.5)")
        if self.device not in DEVICES:
            raise UsageError(f"unknown device {self.device!r}: choose cpu or cuda")
        if self.min_valid_replies < 1:
            raise UsageError("min-valid-replies must be at least 1")
        if not (0 < self.registration_timeout < math.inf and 0 < self.round_timeout < math.inf):
            raise UsageError("registration-timeout and round-timeout must be finite numbers of seconds > 0")
        if self.local_epochs < 1 or self.batch_size < 1 or not 0 < self.lr < math.inf:
            raise UsageError("local-epochs and batch-size must be >= 1 and lr a finite number > 0")
        for name, value in (("proximal-mu", self.proximal_mu), ("fedadam-eta", self.fedadam_eta)):
            if not 0 <= value < math.inf:
                raise UsageError(f"{name} must be a finite number >= 0, got {value}")
        if not self.purpose.strip():
            raise UsageError("every run declares a purpose: pass --purpose")
        check_name(self.purpose, "--purpose", MAX_PURPOSE)
        check_name(self.operator, "--operator")
