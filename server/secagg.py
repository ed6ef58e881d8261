"""A governed run under SecAgg+: Flower's legacy DefaultWorkflow with SecAggPlusWorkflow, governed.

Flower 1.42 offers SecAgg+ only through its legacy API, so this path does not go through
`GovernedStrategy`; it keeps the same governance in the legacy hooks:

- `SecAggStrategy.configure_fit` asks the consent selector for the round's nodes (recorded
  first, as always) and instructs only those;
- `StageWatch` (server/secagg_watch.py), the Grid the workflow talks through, notes which
  nodes completed each protocol stage and checks each node's signed statement over its
  masked vector; a failed check makes the node a SecAgg+ dropout;
- `aggregate_fit` receives only the unmasked sum (the weighted average) and adopts it if
  enough nodes are in it;
- `evaluate` (Flower's central evaluation, after every round) first writes the round to the
  ledger (`SecAggRecorder`), then evaluates on the held-out split (`round.evaluated`).

The ledger gets, per round: `round.selection`; `round.reply` for each node whose masked
vector is in the sum, with its signed statement over the masked vector and no update digest
(the server never saw the update); `round.rejected` for each node that left the protocol;
`round.secagg` with the participation and the aggregate's hash; `round.aggregated` or
`round.failed`. See docs/secure-aggregation.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from flwr.app import Array, ArrayRecord, Context, MetricRecord
from flwr.common import FitIns, Parameters, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import Stage
from flwr.server import LegacyContext, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid

from fedgov.protocol import named_arrays
from fedgov.secagg import MAX_WEIGHT, MODULUS_RANGE, PROTOCOL
from fedgov.settings import RunSettings
from governance import entry_types as et
from governance.archive import archive_model
from governance.digests import arrays_digest
from governance.identity import NodeRegistry
from server.consent_selector import ConsentSelector
from server.governed import RoundFacts, Selector
from server.progress import ProgressGrid, ProgressLine, round_label
from server.replies import Rejection
from server.report import RunReport
from server.run_entries import RunEntries
from server.secagg_watch import FIT_METRICS, STAGES, MaskedReplyChecker, StageWatch, stage_of

EvaluateFn = Callable[[int, ArrayRecord], MetricRecord]


@dataclass
class RoundOutcome:
    """What `aggregate_fit` made of a round: the adopted aggregate, or why there is none."""

    arrays: ArrayRecord | None = None
    train_metrics: dict[str, float] | None = None
    failure: str | None = None


def as_arrays(ndarrays: list[np.ndarray], like: ArrayRecord) -> ArrayRecord:
    """Legacy parameters as the model's named arrays, in the model's own dtypes (the sum is dequantized
    as float64; the federation trains float32)."""
    return ArrayRecord({key: Array(np.asarray(a).astype(like[key].dtype))
                        for key, a in zip(like.keys(), ndarrays, strict=True)})


class SecAggRecorder:
    """Writes a SecAgg+ round to the ledger, in one batch, before its evaluation is recorded."""

    def __init__(self, entries: RunEntries, settings: RunSettings, binding: dict[int, str], registry: NodeRegistry,
                 selector: ConsentSelector, watch: StageWatch, report: RunReport) -> None:
        self.entries = entries
        self.secagg = settings.secagg
        self.binding = binding
        self.registry = registry
        self.selector = selector
        self.watch = watch
        self.report = report

    def close_round(self, facts: RoundFacts, outcome: RoundOutcome) -> None:
        entries, r, view = self.entries, facts.server_round, self.watch.rounds[facts.server_round]
        input_hash = entries.model_hash
        summed = view.stages.get(Stage.COLLECT_MASKED_VECTORS, []) if outcome.arrays is not None else []
        failure = outcome.failure or (None if outcome.arrays is not None else self._halted(facts))
        name = self.binding.get
        drafts, shown = [], []
        for flower_id in summed:
            node, statement = name(flower_id, ""), view.statements[flower_id]
            drafts.append(entries.draft(et.ROUND_REPLY, {
                "node_id": node, "flower_node_id": str(flower_id), "team": self.registry.get(node).team,
                "num_examples": statement["num_examples"], "metrics": statement["metrics"],
                "consent_record_id": self.selector.consent_used.get(node),
                "secagg": True, "individual_update_visible": False,
                **{k: statement[k] for k in ("masked_update_digest", "metrics_digest", "signature",
                                              "dataset_fingerprint", "device") if k in statement},
            }, round_=r, node_id=node, model=input_hash, scope=et.node_scope(node)))
            shown.append({"node_id": flower_id, "num_examples": statement["num_examples"],
                          "metrics": statement["metrics"], "masked": True, "device": statement.get("device")})
        rejected = [Rejection(n, view.dropped.get(n, "not in the SecAgg+ sum: the protocol halted"))
                    for n in facts.selected if n not in summed]
        for rejection in rejected:
            node = name(rejection.node_id, "")
            drafts.append(entries.draft(et.ROUND_REJECTED, {
                "node_id": node, "flower_node_id": str(rejection.node_id), "reason": rejection.reason,
            }, round_=r, node_id=node, model=input_hash, scope=et.node_scope(node) if node else None))
        aggregate_hash = arrays_digest(named_arrays(outcome.arrays)) if outcome.arrays is not None else None
        drafts.append(entries.draft(et.ROUND_SECAGG, {
            "protocol": PROTOCOL, "num_shares": self.secagg.num_shares,
            "reconstruction_threshold": self.secagg.reconstruction_threshold,
            "clipping_range": self.secagg.clipping_range, "quantization_range": self.secagg.quantization_range,
            "modulus_range": MODULUS_RANGE, "max_weight": MAX_WEIGHT,
            "selected": sorted(name(n, str(n)) for n in facts.selected),
            "stages": {stage: sorted(name(n, str(n)) for n in view.stages.get(stage, [])) for stage in STAGES},
            "completed": sorted(name(n, str(n)) for n in summed),
            "dropped": sorted(name(r.node_id, str(r.node_id)) for r in rejected),
            "aggregate_hash": aggregate_hash, "individual_updates_visible": False,
        }, round_=r, model=input_hash))
        if failure is not None:
            drafts.append(entries.draft(et.ROUND_FAILED, {"reason": failure, "input_model_hash": input_hash},
                                        round_=r, model=input_hash))
        else:
            assert outcome.arrays is not None
            output_hash = archive_model(entries.ledger, named_arrays(outcome.arrays))
            drafts.append(entries.draft(et.ROUND_AGGREGATED, {
                "input_model_hash": input_hash, "output_model_hash": output_hash,
                "contributors": sorted(name(n, "") for n in summed),
                "train_metrics": outcome.train_metrics or {}, "secagg_aggregate_hash": aggregate_hash,
            }, round_=r, model=output_hash))
            entries.model_hash = output_hash
        entries.ledger.append(drafts)
        facts.rejected, facts.failure = rejected, failure
        facts.train_metrics = MetricRecord(outcome.train_metrics) if outcome.train_metrics else None
        self.report.masked_replies(r, shown)
        self.report.round_aggregated(facts)

    def _halted(self, facts: RoundFacts) -> str:
        """Why a round released no aggregate: the first stage too few nodes completed."""
        view = self.watch.rounds[facts.server_round]
        for stage in STAGES:
            if stage not in view.stages:
                return f"SecAgg+ halted before stage {stage}: too few nodes for the reconstruction threshold " \
                       f"({self.secagg.reconstruction_threshold}) remained"
        return "SecAgg+ released no aggregate (too few shares to unmask)"


class SecAggStrategy(FedAvg):
    """Flower's legacy FedAvg, governed: it trains the selected nodes and adopts only SecAgg+'s sum."""

    def __init__(self, *, selector: Selector, initial: ArrayRecord, fit_config: dict[str, Any],
                 min_valid_replies: int, evaluate_fn: EvaluateFn, report: RunReport) -> None:
        super().__init__(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=1, min_evaluate_clients=0,
                         min_available_clients=1,
                         initial_parameters=ndarrays_to_parameters([a.numpy() for a in initial.values()]))
        self.selector = selector
        self.initial = initial
        self.fit_config = fit_config
        self.min_valid_replies = min_valid_replies
        self.evaluate_central = evaluate_fn
        self.report = report
        self.recorder: SecAggRecorder | None = None
        self.facts: RoundFacts | None = None
        self.outcome = RoundOutcome()
        self.model = initial  # the model the next round starts from

    def configure_fit(self, server_round: int, parameters: Parameters, client_manager) -> list:
        proxies = {proxy.node_id: proxy for proxy in client_manager.all().values()}
        candidates = sorted(proxies)
        selected = sorted(self.selector(server_round, candidates))
        self.facts = RoundFacts(server_round, candidates, selected, self.initial)
        self.outcome = RoundOutcome()
        self.report.round_selected(self.facts)
        fit_ins = FitIns(parameters, {**self.fit_config, "server-round": server_round})
        return [(proxies[n], fit_ins) for n in selected]

    def aggregate_fit(self, server_round: int, results: list, failures: list) -> tuple[Parameters | None, dict]:
        """Every result carries the same parameters, SecAgg+'s weighted average; the metrics are each node's own."""
        if len(results) < max(self.min_valid_replies, 1):
            self.outcome.failure = (f"round {server_round} failed: {len(results)} nodes in the SecAgg+ sum, below "
                                    f"min-valid-replies={self.min_valid_replies}; the model is kept")
            return None, {}
        arrays = as_arrays(parameters_to_ndarrays(results[0][1].parameters), self.initial)
        total = sum(res.num_examples for _, res in results)
        metrics = {key: sum(float(res.metrics[key]) * res.num_examples for _, res in results) / total
                   for key in FIT_METRICS}  # each checked by the watch before the reply reached the sum
        self.outcome = RoundOutcome(arrays, metrics)
        self.model = arrays
        return ndarrays_to_parameters([a.numpy() for a in arrays.values()]), metrics

    def evaluate(self, server_round: int, parameters: Parameters) -> tuple[float, dict] | None:
        """Central evaluation after each round; the round is recorded first."""
        if server_round > 0 and self.facts is not None and self.facts.server_round == server_round:
            assert self.recorder is not None
            self.recorder.close_round(self.facts, self.outcome)
        arrays = as_arrays(parameters_to_ndarrays(parameters), self.initial)
        metrics = self.evaluate_central(server_round, arrays)
        return float(metrics["loss"]), dict(metrics)


def run_secure_aggregation(grid: Grid, context: Context, settings: RunSettings, *, entries: RunEntries,
                           selector: ConsentSelector, round_selector: Selector, binding: dict[int, str],
                           registry: NodeRegistry, report: RunReport, initial: ArrayRecord,
                           evaluate_fn: EvaluateFn, live_progress: bool = False) -> ArrayRecord:
    """Run every round under SecAgg+, governed; return the final model. Progress is shown per protocol stage
    (`round 1/3 SecAgg+ collect_masked_vectors: 7 of 10 nodes replied`)."""
    training, secagg = settings.training, settings.secagg
    fit_config: dict[str, Any] = {"lr": training.lr, "local-epochs": training.local_epochs,
                                  "batch-size": training.batch_size}
    if settings.strategy.name == "fedprox":
        fit_config["proximal-mu"] = settings.strategy.proximal_mu
    strategy = SecAggStrategy(selector=round_selector, initial=initial, fit_config=fit_config,
                              min_valid_replies=settings.aggregation_minimum(), evaluate_fn=evaluate_fn, report=report)
    checker = MaskedReplyChecker(entries.run_id, binding, registry, [a.numpy().shape for a in initial.values()])
    num_rounds = training.num_server_rounds
    progress = ProgressLine(report.console, num_rounds, live=live_progress,  # per protocol stage
                            describe=lambda msgs: f"{round_label(msgs, num_rounds)} SecAgg+ {stage_of(msgs) or 'message'}")
    watch = StageWatch(ProgressGrid(grid, progress), checker)
    strategy.recorder = SecAggRecorder(entries, settings, binding, registry, selector, watch, report)
    legacy = LegacyContext(context, config=ServerConfig(num_rounds=training.num_server_rounds), strategy=strategy)
    workflow = DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(
        num_shares=secagg.num_shares, reconstruction_threshold=secagg.reconstruction_threshold,
        max_weight=MAX_WEIGHT, clipping_range=secagg.clipping_range,
        quantization_range=secagg.quantization_range, modulus_range=MODULUS_RANGE,
        timeout=settings.strategy.round_timeout))
    workflow(watch, legacy)
    return strategy.model
