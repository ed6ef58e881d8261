"""fedgov's ServerApp: a Flower strategy wrapped by governance, with central evaluation."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp

from fedgov.models import build_model
from governance.selection import draw
from fedgov.training import evaluate, resolve_device
from server.governed import GovernedStrategy
from server.registration import wait_for_nodes
from server.report import RunReport, write_json_atomic
from fedgov.settings import RunSettings
from server.strategies import build_strategy
from simulations.datasets import load_split

app = ServerApp()


def _central_evaluator(settings: RunSettings, report: RunReport):
    """Evaluate the global model on the held-out split after every round."""
    _, held_out = load_split(settings.dataset, settings.seed)
    model = build_model(settings.dataset, settings.seed)
    device = resolve_device(settings.device)

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model.load_state_dict(arrays.to_torch_state_dict())
        loss, accuracy = evaluate(model, held_out, device)
        metrics = {"loss": loss, "accuracy": accuracy}
        report.evaluated(server_round, metrics)
        return MetricRecord(metrics)

    return evaluate_fn


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the configured strategy for the configured rounds, governed."""
    settings = RunSettings.from_run_config(context.run_config)
    out_dir = Path(settings.out_dir) if settings.out_dir else None
    if out_dir is not None:
        write_json_atomic(out_dir / "config.json", settings.to_run_config())
    report = RunReport(out_dir, settings.num_server_rounds)

    wait_for_nodes(grid, settings.num_partitions, settings.registration_timeout)

    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    flwr_logger.setLevel(logging.ERROR)  # hush "federated evaluation skipped": it is by design
    inner = build_strategy(settings)
    flwr_logger.setLevel(level)

    def select(server_round: int, candidates) -> list[int]:
        k = settings.sample_size(len(candidates))
        return [int(n) for n in draw([str(c) for c in candidates], k, settings.seed, server_round)]

    strategy = GovernedStrategy(
        inner, selector=select, observers=[report], min_valid_replies=settings.min_valid_replies
    )
    model = build_model(settings.dataset, settings.seed)
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(model.state_dict()),
        num_rounds=settings.num_server_rounds,
        timeout=settings.round_timeout,
        train_config=ConfigRecord(
            {"lr": settings.lr, "local-epochs": settings.local_epochs, "batch-size": settings.batch_size}
        ),
        evaluate_fn=_central_evaluator(settings, report),
    )
    report.save()
    report.save_model(result.arrays if result.arrays is not None else ArrayRecord(model.state_dict()))
