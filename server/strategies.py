"""Flower's own Message-API strategies, chosen by name from the run config.

fedgov never forks a strategy: it builds Flower's and lets the governed wrapper decide
which nodes it sees. The inner strategy therefore trains every node it is shown.
"""

from __future__ import annotations

from flwr.serverapp.strategy import FedAdam, FedAvg, FedMedian, FedProx, FedTrimmedAvg, Krum, Strategy

from fedgov.settings import RunSettings


def _parameters(settings: RunSettings) -> dict[str, object]:
    """The parameters that shape each strategy's aggregation, from the run config."""
    return {
        "fedavg": {},
        "fedprox": {"proximal_mu": settings.proximal_mu},
        "fedadam": {"eta": settings.fedadam_eta, "eta_l": settings.lr},
        "fedtrimmedavg": {"beta": settings.trimmed_beta},
        "krum": {"num_malicious_nodes": settings.krum_byzantine},
        "fedmedian": {},
    }[settings.strategy]


STRATEGY_CLASSES: dict[str, type[Strategy]] = {
    "fedavg": FedAvg, "fedprox": FedProx, "fedadam": FedAdam,
    "fedtrimmedavg": FedTrimmedAvg, "krum": Krum, "fedmedian": FedMedian,
}


def build_strategy(settings: RunSettings) -> Strategy:
    """The named Flower strategy with its parameters from the run config."""
    return STRATEGY_CLASSES[settings.strategy](
        fraction_train=1.0,  # the governed wrapper has already sampled the round
        fraction_evaluate=0.0,  # evaluation is central, on the held-out split
        min_train_nodes=1,
        min_evaluate_nodes=0,
        min_available_nodes=1,
        **_parameters(settings),
    )


def strategy_parameters(settings: RunSettings) -> dict[str, object]:
    """The strategy and the parameters that shape its aggregation, for the run record."""
    return {"name": settings.strategy, "parameters": _parameters(settings),
            "fraction_train": settings.fraction_train, "min_nodes": settings.min_nodes()}
