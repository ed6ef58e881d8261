"""The round recorder: the observer that writes each run and round of a governed run to the ledger.

Each write happens before the step it records goes on, and a failed write raises, so a
round never runs unrecorded. See docs/governance.md for every entry.
"""

from __future__ import annotations

from typing import Any

from flwr.app import ArrayRecord

from fedgov.protocol import METRICS_KEY, NUM_EXAMPLES_KEY, named_arrays
from fedgov.settings import RunSettings, parse_retrain_trigger
from governance import entry_types as et
from governance.archive import archive_model
from governance.identity import NodeRegistry
from governance.monitoring.link import trigger_cause
from server.consent_selector import ConsentSelector
from server.governed import RoundFacts
from server.overhead import Overhead
from server.reply_verifier import ReplyVerifier
from server.run_entries import RunEntries


class RoundRecorder:
    """Records the run's start and end, each round's replies and aggregate, and each evaluation."""

    def __init__(self, entries: RunEntries, settings: RunSettings, binding: dict[int, str], registry: NodeRegistry,
                 selector: ConsentSelector, verifier: ReplyVerifier, overhead: Overhead) -> None:
        self.entries = entries
        self.settings = settings
        self.binding = binding
        self.registry = registry
        self.selector = selector
        self.verifier = verifier
        self.overhead = overhead

    # -- run -----------------------------------------------------------------------------

    def run_started(self, initial: ArrayRecord, app_hash: str, strategy: dict[str, Any]) -> None:
        entries, settings = self.entries, self.settings
        entries.model_hash = archive_model(entries.ledger, named_arrays(initial))
        entries.ledger.append([entries.draft(et.RUN_STARTED, {
            "operator": settings.governance.operator, "purpose": settings.governance.purpose,
            "config": settings.to_run_config(), "config_hash": entries.config_hash,
            "app_hash": app_hash, "strategy": strategy, "seed": settings.training.seed,
            "expected_nodes": settings.training.num_partitions, "initial_model_hash": entries.model_hash,
            "binding": {str(k): v for k, v in sorted(self.binding.items())},
            **self._trigger(),
        }, model=entries.model_hash)])

    def _trigger(self) -> dict[str, Any]:
        """A retraining run's cause: the monitor.trigger entry its run config names, pinned by its leaf hash."""
        seq = parse_retrain_trigger(self.settings.governance.retrain_trigger)
        return {"trigger": trigger_cause(self.entries.ledger, seq)} if seq else {}

    def run_finished(self, status: str, reason: str = "") -> None:
        self.entries.ledger.append([self.entries.draft(et.RUN_FINISHED, {
            "status": status, "reason": reason, "final_model_hash": self.entries.model_hash})])
        self.entries.ledger.checkpoint()

    # -- round observer ------------------------------------------------------------------

    def round_selected(self, facts: RoundFacts) -> None:
        """Selection is recorded by the selector, before any instruction is built."""

    def round_checked(self, facts: RoundFacts) -> None:
        """Replies are recorded with the aggregation, in one batch."""

    def round_aggregated(self, facts: RoundFacts) -> None:
        with self.overhead.timed(facts.server_round, "round record and model archive"):
            self._record_round(facts)

    def _record_round(self, facts: RoundFacts) -> None:
        entries, r = self.entries, facts.server_round
        input_hash = entries.model_hash  # the model sent this round: the last one archived
        drafts = []
        contributors = []
        for reply in facts.valid:
            node = self.binding[reply.metadata.src_node_id]
            metrics = dict(reply.content[METRICS_KEY])
            contributors.append(node)
            drafts.append(entries.draft(et.ROUND_REPLY, {
                "node_id": node, "flower_node_id": str(reply.metadata.src_node_id),
                "team": self.registry.get(node).team, "num_examples": metrics[NUM_EXAMPLES_KEY],
                "metrics": metrics, "consent_record_id": self.selector.consent_used.get(node),
                **self.verifier.take(reply.metadata.src_node_id),
            }, round_=r, node_id=node, model=input_hash, scope=et.node_scope(node)))
        for rejection in facts.rejected:
            node = self.binding.get(rejection.node_id, "")
            drafts.append(entries.draft(et.ROUND_REJECTED, {
                "node_id": node, "flower_node_id": str(rejection.node_id), "reason": rejection.reason,
            }, round_=r, node_id=node, model=input_hash, scope=et.node_scope(node) if node else None))
        if facts.failure or facts.output_arrays is None:
            drafts.append(entries.draft(et.ROUND_FAILED, {
                "reason": facts.failure or "the strategy returned no model", "input_model_hash": input_hash,
            }, round_=r, model=input_hash))
        else:
            output_hash = archive_model(entries.ledger, named_arrays(facts.output_arrays))
            drafts.append(entries.draft(et.ROUND_AGGREGATED, {
                "input_model_hash": input_hash, "output_model_hash": output_hash,
                "contributors": sorted(contributors),
                "train_metrics": dict(facts.train_metrics) if facts.train_metrics else {},
            }, round_=r, model=output_hash))
            entries.model_hash = output_hash
        self.verifier.forget()
        entries.ledger.append(drafts)

    def evaluated(self, server_round: int, metrics: dict[str, float]) -> None:
        """The round's central evaluation, then a signed checkpoint closes the round."""
        entries = self.entries
        with self.overhead.timed(server_round, "evaluation record and signed checkpoint"):
            entries.ledger.append([entries.draft(et.ROUND_EVALUATED, {"model_hash": entries.model_hash,
                                                                      "metrics": metrics},
                                                 round_=server_round, model=entries.model_hash)])
            entries.ledger.checkpoint()
