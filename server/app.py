"""fedgov's ServerApp: any Flower strategy, governed, with central evaluation.

Governed means: consent is checked at every round's selection, every reply's signature
is verified before aggregation, and every step is written to the encrypted ledger first.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import suppress
from pathlib import Path

import psycopg
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from sqlalchemy.exc import SQLAlchemyError

from fedgov.models import build_model
from fedgov.coordinator_keys import ledger_credentials
from fedgov.settings import RunSettings
from fedgov.training import evaluate, resolve_device
from governance.errors import FedgovError
from governance.ledger import Ledger
from governance.node_store import load_registry
from governance.workspace import Workspace
from server.app_hash import app_code_hash
from server.governed import GovernedStrategy
from server.ledger_recorder import LedgerRecorder
from server.node_binding import bind_nodes
from server.registration import wait_for_gate, wait_for_nodes
from server.replies import GOVERNED_RECORDS
from server.report import RunReport, write_json_atomic
from server.strategies import build_strategy, strategy_parameters
from fedgov.datasets import load_split

app = ServerApp()
APP_DIR = Path(__file__).resolve().parent.parent


def _central_evaluator(settings: RunSettings, report: RunReport, recorder: LedgerRecorder):
    """Evaluate the global model on the held-out split after every round."""
    _, held_out = load_split(settings.dataset, settings.seed)
    model = build_model(settings.dataset, settings.seed)
    device = resolve_device(settings.device)

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model.load_state_dict(arrays.to_torch_state_dict())
        loss, accuracy = evaluate(model, held_out, device)
        metrics = {"loss": loss, "accuracy": accuracy}
        recorder.evaluated(server_round, metrics)
        report.evaluated(server_round, metrics, overhead=dict(recorder.overhead.pop(server_round, {})))
        return MetricRecord(metrics)

    return evaluate_fn


def _record_failure(recorder: LedgerRecorder, err: Exception) -> None:
    """Write `run.finished: failed`; if the ledger itself is what failed, the original
    error is the one the operator must see, so a second failure here is not raised."""
    with suppress(FedgovError, OSError, SQLAlchemyError, sqlite3.Error, psycopg.Error):
        recorder.run_finished("failed", f"{type(err).__name__}: {err}")


def _quiet_build(settings: RunSettings):
    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    flwr_logger.setLevel(logging.ERROR)  # hush "federated evaluation skipped": it is by design
    try:
        return build_strategy(settings)
    finally:
        flwr_logger.setLevel(level)


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the configured strategy for the configured rounds, governed."""
    settings = RunSettings.from_run_config(context.run_config)
    wait_for_gate(settings.enrollment_gate, settings.registration_timeout)
    out_dir = Path(settings.out_dir) if settings.out_dir else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / "config.json", settings.to_run_config())
    report = RunReport(out_dir, settings.num_server_rounds, str(context.run_id))
    workspace = Workspace.discover(Path(settings.workspace) if settings.workspace else None)
    with Ledger.open(workspace, **ledger_credentials()) as ledger:
        wait_for_nodes(grid, settings.num_partitions, settings.registration_timeout)
        binding = bind_nodes(grid, simulated=bool(settings.sim_root))
        report.nodes_bound(binding)
        recorder = LedgerRecorder(ledger, str(context.run_id), settings, binding, load_registry(ledger))
        model = build_model(settings.dataset, settings.seed)
        initial = ArrayRecord(model.state_dict())
        strategy = GovernedStrategy(
            _quiet_build(settings),
            selector=recorder.select,
            observers=[report, recorder],
            min_valid_replies=settings.aggregation_minimum(),
            allowed_records=GOVERNED_RECORDS,
            reply_checks=[recorder.check_reply],
        )
        recorder.run_started(initial, grid.run.fab_hash or app_code_hash(APP_DIR), strategy_parameters(settings))
        try:
            result = strategy.start(
                grid=grid,
                initial_arrays=initial,
                num_rounds=settings.num_server_rounds,
                timeout=settings.round_timeout,
                train_config=ConfigRecord(
                    {"lr": settings.lr, "local-epochs": settings.local_epochs, "batch-size": settings.batch_size}
                ),
                evaluate_fn=_central_evaluator(settings, report, recorder),
            )
        except Exception as err:  # recorded, then re-raised: a failed run is still audited
            _record_failure(recorder, err)
            raise
        recorder.run_finished("finished")
    report.save()
    report.save_model(result.arrays if result.arrays is not None else initial)
