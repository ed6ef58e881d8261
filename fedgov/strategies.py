"""The strategy table: each Flower strategy fedgov offers, its parameters and its minimum of nodes.

One table serves building a strategy (the ServerApp), recording it (`run.started`) and
checking a run's settings against it, so the three cannot disagree. fedgov never forks a
strategy: it builds Flower's own, and the governed wrapper decides which nodes it sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from governance.errors import UsageError

if TYPE_CHECKING:  # Flower loads only when a strategy is built: the CLI checks settings without it
    from flwr.serverapp.strategy import Strategy


@dataclass(frozen=True)
class StrategySpec:
    """One row of the table. `parameters` takes the strategy settings and the nodes' learning rate."""

    flower_class: str  # in flwr.serverapp.strategy
    parameters: Callable[["StrategySettings", float], dict[str, Any]]  # what shapes its aggregation
    min_nodes: Callable[["StrategySettings"], int]  # the fewest nodes a round can aggregate
    robust: bool = False  # a robust aggregator keeps its guarantee only with its minimum of replies


STRATEGIES: dict[str, StrategySpec] = {
    "fedavg": StrategySpec("FedAvg", lambda s, lr: {}, lambda s: 2),
    "fedprox": StrategySpec("FedProx", lambda s, lr: {"proximal_mu": s.proximal_mu}, lambda s: 2),
    "fedadam": StrategySpec("FedAdam", lambda s, lr: {"eta": s.fedadam_eta, "eta_l": lr}, lambda s: 2),
    "fedtrimmedavg": StrategySpec("FedTrimmedAvg", lambda s, lr: {"beta": s.trimmed_beta}, lambda s: 3, robust=True),
    "krum": StrategySpec("Krum", lambda s, lr: {"num_malicious_nodes": s.krum_byzantine},
                         lambda s: 2 * s.krum_byzantine + 3, robust=True),
    "fedmedian": StrategySpec("FedMedian", lambda s, lr: {}, lambda s: 2),
}


@dataclass(frozen=True)
class StrategySettings:
    """Which Flower strategy aggregates, with what parameters, and what a round needs."""

    name: str = field(metadata={"key": "strategy"})
    fraction_train: float = field()
    min_valid_replies: int = field()
    proximal_mu: float = field()
    fedadam_eta: float = field()
    trimmed_beta: float = field()
    krum_byzantine: int = field()
    round_timeout: float = field()

    def check(self) -> None:
        if self.name not in STRATEGIES:
            raise UsageError(f"unknown strategy {self.name!r}: choose one of {', '.join(STRATEGIES)}")
        if not 0.0 < self.fraction_train <= 1.0:
            raise UsageError(f"--fraction must be in (0, 1], got {self.fraction_train}")
        if self.krum_byzantine < 0 or not 0.0 <= self.trimmed_beta < 0.5:
            raise UsageError("krum-byzantine must be >= 0 and trimmed-beta in [0, 0.5)")
        if self.min_valid_replies < 1:
            raise UsageError("min-valid-replies must be at least 1")
        if not 0 < self.round_timeout < math.inf:
            raise UsageError("registration-timeout and round-timeout must be finite numbers of seconds > 0")
        for name, value in (("proximal-mu", self.proximal_mu), ("fedadam-eta", self.fedadam_eta)):
            if not 0 <= value < math.inf:
                raise UsageError(f"{name} must be a finite number >= 0, got {value}")

    def min_nodes(self) -> int:
        """The fewest nodes a round of this strategy can aggregate."""
        return STRATEGIES[self.name].min_nodes(self)

    def aggregation_minimum(self) -> int:
        """Valid replies a round needs: robust aggregators (Krum, trimmed mean) keep their
        guarantee only with their minimum; averaging needs `min-valid-replies`."""
        if STRATEGIES[self.name].robust:
            return max(self.min_valid_replies, self.min_nodes())
        return self.min_valid_replies


def build_strategy(strategy: StrategySettings, lr: float, weighted_by: str = "num-examples") -> "Strategy":
    """The named Flower strategy with its parameters; it trains every node it is shown.

    `weighted_by` is the reply metric an averaging strategy weighs updates by (under DP, `dp-weight`:
    an unweighted mean, fedgov/privacy.py); strategies that do not average ignore it.
    """
    from flwr.serverapp import strategy as flower_strategies

    spec = STRATEGIES[strategy.name]
    return getattr(flower_strategies, spec.flower_class)(
        fraction_train=1.0,  # the governed wrapper has already sampled the round
        fraction_evaluate=0.0,  # evaluation is central, on the held-out split
        min_train_nodes=1,
        min_evaluate_nodes=0,
        min_available_nodes=1,
        **({"weighted_by_key": weighted_by} if weighted_by != "num-examples" else {}),
        **spec.parameters(strategy, lr),
    )


def strategy_record(strategy: StrategySettings, lr: float) -> dict[str, Any]:
    """The strategy and the parameters that shape its aggregation, as `run.started` records them."""
    return {"name": strategy.name, "parameters": STRATEGIES[strategy.name].parameters(strategy, lr),
            "fraction_train": strategy.fraction_train, "min_nodes": strategy.min_nodes()}
