"""fedgov's ServerApp: any Flower strategy, governed, with central evaluation.

Governed means: consent is checked at every round's selection, every reply's signature
is verified before aggregation, and every step is written to the encrypted ledger first.
`serve` is the whole coordinator; the simulation harness calls it with its own node
binding and rehearsal, the deployed app (`app`, below) with the registered names.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psycopg
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from sqlalchemy.exc import SQLAlchemyError

from fedgov.coordinator_keys import ledger_credentials
from fedgov.datasets import load_split
from fedgov.models import build_model
from fedgov.local_data import schema_for
from fedgov.privacy import DP_WEIGHT_KEY, ReplyCalibrated, wrap_dp
from fedgov.protocol import GOVERNED_RECORDS, MONITOR_REFERENCE_KEY, MONITORED_RECORDS, NUM_EXAMPLES_KEY
from fedgov.settings import APP_DIR, RunSettings
from fedgov.summaries import Reference, reference_from
from fedgov.strategies import build_strategy, strategy_record
from fedgov.training import evaluate, resolve_device
from governance.errors import FedgovError
from governance.identity import NodeRegistry
from governance.ledger import Ledger
from governance.node_store import load_registry
from governance.workspace import Workspace
from server.app_hash import app_code_hash
from server.consent_selector import ConsentSelector
from server.governed import GovernedStrategy, ReplyCheck, RoundObserver, Selector
from server.monitor_recorder import MonitorRecorder
from server.node_binding import bind_registered
from server.overhead import Overhead
from server.privacy_keeper import PrivacyKeeper
from server.progress import ProgressGrid, ProgressLine
from server.registration import wait_for_nodes
from server.reply_verifier import ReplyVerifier
from server.report import RunReport, write_json_atomic
from server.round_recorder import RoundRecorder
from server.secagg import run_secure_aggregation
from server.run_entries import RunEntries
from server.summary_checks import SummaryCheck

app = ServerApp()


@dataclass(frozen=True)
class Coordinator:
    """The governance roles of one run, composed once and handed to the governed strategy."""

    selector: ConsentSelector
    verifier: ReplyVerifier
    recorder: RoundRecorder
    overhead: Overhead
    monitor: MonitorRecorder | None = None  # with monitoring on (run config `monitor`)
    summaries: SummaryCheck | None = None
    privacy: PrivacyKeeper | None = None  # the budgets and the DP releases, when the run has DP

    def observers(self) -> list[RoundObserver]:
        """The ledger's observers, in the order they write: the round's record, the DP release, then the
        monitor's verdicts."""
        return [self.recorder, *([self.privacy] if self.privacy else []), *([self.monitor] if self.monitor else [])]

    def reply_checks(self) -> list[ReplyCheck]:
        """Structure of the summary first (hostile bytes), then the signature over everything."""
        return [*([self.summaries.check] if self.summaries else []), self.verifier.check]


def monitoring_reference(settings: RunSettings) -> Reference:
    """The shared bins: quantiles of the coordinator's held-out split, named by the dataset's schema."""
    _, held_out = load_split(settings.training.dataset, settings.training.seed)
    schema = schema_for(settings.training.dataset)
    return reference_from(held_out.x, schema.feature_names, schema.labels, settings.monitoring.monitor_bins)


def coordinator(ledger: Ledger, run_id: str, settings: RunSettings, binding: dict[int, str],
                registry: NodeRegistry) -> Coordinator:
    """The consent selector, the reply verifier and the round recorder of one run, sharing its entries."""
    entries, overhead = RunEntries(ledger, run_id, settings.to_run_config()), Overhead()
    privacy = PrivacyKeeper(entries, settings, binding) if settings.privacy.enabled else None
    selector = ConsentSelector(entries, settings, binding, overhead, gate=privacy.gate if privacy else None)
    verifier = ReplyVerifier(run_id, binding, registry, overhead)
    recorder = RoundRecorder(entries, settings, binding, registry, selector, verifier, overhead)
    if not settings.monitoring.monitor or settings.secagg.enabled:  # SecAgg+ hides the rows' summaries too
        return Coordinator(selector, verifier, recorder, overhead, privacy=privacy)
    summaries = SummaryCheck(monitoring_reference(settings), settings.monitoring.monitor_min_count)
    return Coordinator(selector, verifier, recorder, overhead, MonitorRecorder(entries, settings, binding, summaries,
                                                                               overhead), summaries, privacy)


def _central_evaluator(settings: RunSettings, report: RunReport, roles: Coordinator):
    """Evaluate the global model on the held-out split after every round."""
    _, held_out = load_split(settings.training.dataset, settings.training.seed)
    model = build_model(settings.training.dataset, settings.training.seed)
    device = resolve_device(settings.training.device)

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model.load_state_dict(arrays.to_torch_state_dict())
        loss, accuracy = evaluate(model, held_out, device)
        metrics = {"loss": loss, "accuracy": accuracy}
        roles.recorder.evaluated(server_round, metrics)
        monitored = roles.monitor.evaluated(server_round, metrics) if roles.monitor is not None else None
        report.evaluated(server_round, metrics, overhead=roles.overhead.pop(server_round), monitoring=monitored)
        return MetricRecord(metrics)

    return evaluate_fn


def _record_failure(recorder: RoundRecorder, err: Exception) -> None:
    """Write `run.finished: failed`; if the ledger itself is what failed, the original
    error is the one the operator must see, so a second failure here is not raised."""
    with suppress(FedgovError, OSError, SQLAlchemyError, sqlite3.Error, psycopg.Error):
        recorder.run_finished("failed", f"{type(err).__name__}: {err}")


def _quiet_build(settings: RunSettings):
    """The configured Flower strategy, inside Flower's DP wrapper when the run has DP (fedgov/privacy.py)."""
    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    flwr_logger.setLevel(logging.ERROR)  # hush "federated evaluation skipped": it is by design
    try:
        weighted_by = DP_WEIGHT_KEY if settings.privacy.enabled else NUM_EXAMPLES_KEY
        return wrap_dp(build_strategy(settings.strategy, settings.training.lr, weighted_by), settings.privacy)
    finally:
        flwr_logger.setLevel(level)


def _dp_checks(strategy: object, settings: RunSettings) -> list:
    """Under DP, every reply must weigh 1 and (client-side clipping) be clipped: checked, not trusted."""
    if not isinstance(strategy, ReplyCalibrated):
        return []
    return [strategy.check_weight, *([strategy.check_clipped] if settings.privacy.dp == "client-fixed" else [])]


Binder = Callable[[Grid], dict[int, str]]
SelectorHook = Callable[[ConsentSelector], Selector]


def serve(grid: Grid, context: Context, *, bind: Binder = bind_registered,
          around_selection: SelectorHook | None = None, live_progress: bool = False) -> RunReport:
    """Run the configured strategy for the configured rounds, governed.

    `bind` names the fedgov node behind each Flower node id; `around_selection`, when given,
    turns the consent selector into the round's selector (the harness's scheduled withdrawals).
    `live_progress` draws each round's replies as a live line where the console is a terminal;
    otherwise (and always in a deployment, whose output Flower streams to `fedgov run`) they are
    sparse plain lines (server/progress.py).
    """
    settings = RunSettings.from_run_config(context.run_config)
    gov, training = settings.governance, settings.training
    out_dir = Path(gov.out_dir) if gov.out_dir else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / "config.json", settings.to_run_config())
    report = RunReport(out_dir, training.num_server_rounds, str(context.run_id))
    workspace = Workspace.discover(Path(gov.workspace) if gov.workspace else None)
    with Ledger.open(workspace, **ledger_credentials()) as ledger:
        wait_for_nodes(grid, training.num_partitions, gov.registration_timeout)
        binding = bind(grid)
        report.nodes_bound(binding)
        roles = coordinator(ledger, str(context.run_id), settings, binding, load_registry(ledger))
        selector = around_selection(roles.selector) if around_selection else roles.selector.select
        initial = ArrayRecord(build_model(training.dataset, training.seed).state_dict())
        roles.recorder.run_started(initial, grid.run.fab_hash or app_code_hash(APP_DIR), strategy_record(settings.strategy, settings.training.lr))
        train_config = {"lr": training.lr, "local-epochs": training.local_epochs, "batch-size": training.batch_size}
        if roles.monitor is not None:
            roles.monitor.run_started()
            train_config[MONITOR_REFERENCE_KEY] = roles.monitor.reference.to_text()
        try:
            if settings.secagg.enabled:  # Flower's SecAgg+ runs only in its legacy workflow (server/secagg.py)
                final = run_secure_aggregation(
                    grid, context, settings, entries=roles.recorder.entries, selector=roles.selector,
                    round_selector=selector, binding=binding, registry=roles.recorder.registry, report=report,
                    initial=initial, evaluate_fn=_central_evaluator(settings, report, roles), live_progress=live_progress)
            else:
                progress = ProgressLine(report.console, training.num_server_rounds, live=live_progress)
                final = _run_strategy(ProgressGrid(grid, progress), settings, roles, report, selector, initial,
                                      train_config)
        except Exception as err:  # recorded, then re-raised: a failed run is still audited
            _record_failure(roles.recorder, err)
            raise
        roles.recorder.run_finished("finished")
    report.save()
    report.save_model(final)
    return report


def _run_strategy(grid: Grid, settings: RunSettings, roles: Coordinator, report: RunReport, selector: Selector,
                  initial: ArrayRecord, train_config: dict) -> ArrayRecord:
    """The configured Flower strategy, wrapped by GovernedStrategy; returns the final model."""
    training = settings.training
    inner = _quiet_build(settings)
    strategy = GovernedStrategy(
        inner,
        selector=selector,
        observers=[report, *roles.observers()],
        min_valid_replies=settings.aggregation_minimum(),
        allowed_records=MONITORED_RECORDS if roles.monitor else GOVERNED_RECORDS,
        reply_checks=[*roles.reply_checks(), *_dp_checks(inner, settings)],
    )
    result = strategy.start(
        grid=grid,
        initial_arrays=initial,
        num_rounds=training.num_server_rounds,
        timeout=settings.strategy.round_timeout,
        train_config=ConfigRecord(train_config),
        evaluate_fn=_central_evaluator(settings, report, roles),
    )
    return result.arrays if result.arrays is not None else initial


class RoundsFailed(FedgovError):
    """A deployed run finished, but some of its rounds built no model: the run is reported failed."""

    exit_code = 1


def check_rounds(report: RunReport, settings: RunSettings) -> None:
    """Raise RoundsFailed when a round failed and the run did not allow it (`fedgov run --allow-failed-rounds`).

    Flower marks a ServerApp that returns as completed; a run in which every site refused would
    then look like a success to whoever launched it.
    """
    failed = [r for r in report.as_dict()["rounds"] if r.get("status") != "ok"]
    if failed and not settings.governance.allow_failed_rounds:
        first = failed[0]
        raise RoundsFailed(f"{len(failed)} of {report.num_rounds} rounds failed (round {first['round']}: "
                           f"{first.get('failure') or 'no model'}); the ledger records each")


@app.main()
def main(grid: Grid, context: Context) -> None:
    """The deployed coordinator: nodes are bound by the names they registered under."""
    report = serve(grid, context)
    check_rounds(report, RunSettings.from_run_config(context.run_config))
