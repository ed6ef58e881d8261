"""The monitor recorder: the observer that judges drift, degradation and fairness, and records each verdict.

It writes `monitor.reference` once per run (the shared bins), one `monitor.drift` per node with
a summary each round plus the pooled `federation` one, after the round's own record, and one
`monitor.metrics` per evaluated round, after `round.evaluated`. Like the round recorder, each
write happens before the run goes on and a failed write raises (docs/monitoring.md).
"""

from __future__ import annotations

from typing import Any

from fedgov.protocol import LOCAL_ACCURACY_KEY, METRICS_KEY, SUMMARY_KEY
from fedgov.settings import RunSettings
from fedgov.summaries import Reference
from governance import entry_types as et
from governance.monitoring.drift import NodeHistory, Thresholds, federation_drift, node_drift
from governance.monitoring.fairness import round_metrics
from server.governed import RoundFacts
from server.overhead import Overhead
from server.run_entries import RunEntries
from server.summary_checks import SummaryCheck

MONITOR_STEP = "monitoring: drift and fairness records"


class MonitorRecorder:
    """Keeps each node's reference and previous summary, and the global metric's history, for one run."""

    def __init__(self, entries: RunEntries, settings: RunSettings, binding: dict[int, str], summaries: SummaryCheck,
                 overhead: Overhead) -> None:
        m = settings.monitoring
        self.entries = entries
        self.binding = binding
        self.summaries = summaries  # the check that accepted each summary hands it over parsed
        self.reference: Reference = summaries.reference
        self.overhead = overhead
        self.floor = m.fairness_floor
        self.thresholds = Thresholds(m.drift_psi_moderate, m.drift_psi_significant, m.drift_js, m.drift_min_count)
        self._references: dict[str, tuple[int, dict[str, Any]]] = {}  # node -> (round, its first summary)
        self._previous: dict[str, dict[str, Any]] = {}
        self._history: list[tuple[int, float]] = []
        self._verdicts: dict[int, dict[str, str]] = {}
        self._accuracy: dict[int, dict[str, float]] = {}

    def run_started(self) -> None:
        """The shared bins, once: what every summary of the run counts against."""
        self.entries.ledger.append([self.entries.draft(et.MONITOR_REFERENCE, self.reference.to_dict())])

    # -- round observer ------------------------------------------------------------------

    def round_selected(self, facts: RoundFacts) -> None:
        """Nothing to judge before replies arrive."""

    def round_checked(self, facts: RoundFacts) -> None:
        """Summaries are judged once the round is recorded."""

    def round_aggregated(self, facts: RoundFacts) -> None:
        with self.overhead.timed(facts.server_round, MONITOR_STEP):
            self._record_drift(facts)

    def _record_drift(self, facts: RoundFacts) -> None:
        r, entries = facts.server_round, self.entries
        histories, drafts, verdicts, accuracy = [], [], {}, {}
        features, labels = self.reference.features, self.reference.labels
        for reply in facts.valid:
            node = self.binding[reply.metadata.src_node_id]
            local = reply.content[METRICS_KEY].get(LOCAL_ACCURACY_KEY)
            if local is not None:
                accuracy[node] = float(local)
            if SUMMARY_KEY not in reply.content:
                continue
            summary = self.summaries.accepted(reply)
            reference_round, reference = self._references.setdefault(node, (r, summary))
            history = NodeHistory(node, summary, reference, reference_round, self._previous.get(node))
            payload = node_drift(node, r, summary, reference, reference_round, history.previous, features, labels,
                                 self.thresholds)
            drafts.append(entries.draft(et.MONITOR_DRIFT, payload, round_=r, node_id=node, model=entries.model_hash))
            verdicts[node] = payload["verdict"]
            histories.append(history)
            self._previous[node] = summary
        if histories:
            pooled = federation_drift(r, histories, features, labels, self.thresholds)
            drafts.append(entries.draft(et.MONITOR_DRIFT, pooled, round_=r, model=entries.model_hash))
        self._verdicts[r], self._accuracy[r] = verdicts, accuracy
        if drafts:
            entries.ledger.append(drafts)

    # -- evaluation ----------------------------------------------------------------------

    def evaluated(self, server_round: int, metrics: dict[str, float]) -> dict[str, Any] | None:
        """Degradation and fairness of the round, after its central evaluation (round 0 is the baseline);
        returns the recorded `monitor.metrics` payload, which the run's console shows."""
        self._history.append((server_round, float(metrics["accuracy"])))
        if server_round == 0:
            return None
        with self.overhead.timed(server_round, MONITOR_STEP):
            payload = round_metrics(server_round, self._history, self._accuracy.pop(server_round, {}), self.floor,
                                    self._verdicts.pop(server_round, {}))
            self.entries.ledger.append([self.entries.draft(et.MONITOR_METRICS, payload, round_=server_round,
                                                           model=self.entries.model_hash)])
        return payload

