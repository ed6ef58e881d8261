"""The report's monitoring data, pure: drift per node per round (`monitor.drift`) and per-node metrics
with the fairness floor (`monitor.metrics`), from a run's recorded entries alone.

The coordinator computed every figure and recorded it with its threshold and verdict; the report
shows what was recorded and recomputes nothing. When a run recorded none, `not_recorded` says why,
from the run's own config (docs/monitoring.md): monitoring off, or a fedgov without monitoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from governance.report.fields import integer, mapping, names, number, text
from governance.report.source import Recorded

from governance.entry_types import MONITOR_DRIFT, MONITOR_METRICS, MONITOR_REFERENCE  # noqa: F401 (re-exported)
from governance.monitoring.drift import FEDERATION  # the node_id of the pooled, federation-wide drift figure
NONE, MODERATE, SIGNIFICANT, INSUFFICIENT = "none", "moderate", "significant", "insufficient"
VERDICTS = (SIGNIFICANT, MODERATE, NONE, INSUFFICIENT)
UNREADABLE = "unreadable"  # a verdict outside VERDICTS, or an erased payload: shown, never guessed


@dataclass(frozen=True)
class DriftCell:
    """One node's drift in one round, as recorded: its verdict, the largest PSI against its reference."""

    node: str
    round: int
    verdict: str
    max_psi: float | None
    max_psi_feature: str
    drifting: list[str]  # features with a significant verdict
    moderate: list[str]  # features with a moderate verdict
    rows: int | None
    reference_round: int | None
    label_psi: float | None


@dataclass(frozen=True)
class Drift:
    cells: dict[str, dict[int, DriftCell]]  # node -> round -> cell (nodes only, not the federation)
    federation: dict[int, DriftCell]  # round -> the pooled figure
    thresholds: dict[str, float]
    features: list[str]  # the run's features (monitor.reference), or those the drift entries name
    reference: str  # monitor.reference: bins, source and cuts hash, in one line; "" when not recorded
    not_recorded: str | None  # why there is nothing to show; None when something was recorded


@dataclass(frozen=True)
class RoundMetrics:
    """One round's monitor.metrics: the global metric against its best and baseline, and the nodes' spread."""

    round: int
    metric: str
    value: float | None
    best: float | None
    best_round: int | None
    baseline: float | None
    drop_from_best: float | None
    nodes: dict[str, float]
    worst: tuple[str, float] | None
    best_node: tuple[str, float] | None
    spread: float | None
    floor: float | None
    flagged: list[str]
    drift_significant: list[str]
    drift_moderate: list[str]
    share_significant: float | None


@dataclass(frozen=True)
class NodeHealth:
    rounds: list[RoundMetrics]
    flagged: dict[str, list[int]]  # node -> rounds in which it fell below the floor
    not_recorded: str | None


@dataclass(frozen=True)
class MonitoringState:
    """Whether the run monitored, from its recorded config: the reason a section can give for an absence."""

    on: bool | None  # None: the run's config has no `monitor` key (a fedgov before monitoring) or no run.started
    why_off: str = field(default="")


def monitoring_state(config: dict[str, Any] | None) -> MonitoringState:
    """Read `monitor` from the run's recorded config (run.started)."""
    if config is None:
        return MonitoringState(None, "the run has no readable run.started entry, so whether it monitored is "
                                     "not recorded")
    value = config.get("monitor")
    if value is True and config.get("secagg") is True:
        return MonitoringState(False, "monitoring is off under secure aggregation (--secagg): nodes send no data "
                                      "summaries, so the coordinator sees no more than the masked sum")
    if value is False:
        return MonitoringState(False, "monitoring was off for this run (--no-monitor: run config monitor = false)")
    if value is True:
        return MonitoringState(True)
    return MonitoringState(None, "this run was recorded by a fedgov without monitoring (its run config has no "
                                 "'monitor' key)")


def build_drift(entries: Sequence[Recorded], state: MonitoringState) -> Drift:
    """The drift heatmap's data from monitor.drift (and monitor.reference) entries."""
    cells: dict[str, dict[int, DriftCell]] = {}
    pooled: dict[int, DriftCell] = {}
    thresholds: dict[str, float] = {}
    features: list[str] = []
    reference = ""
    for e in entries:
        if e.entry_type == MONITOR_REFERENCE and e.payload is not None and not reference:
            p = e.payload
            features = names(p.get("features"))
            reference = (f"{integer(p.get('bins')) or '?'} bins per feature from {text(p.get('source')) or '?'}; "
                         f"{len(features)} features; cuts {text(p.get('cuts_hash')) or 'not recorded'}")
        if e.entry_type != MONITOR_DRIFT or e.round is None:
            continue
        p = e.payload or {}
        node = text(p.get("node_id")) or e.node_id or FEDERATION
        cell = _drift_cell(node, e.round, e.payload)
        if node == FEDERATION:
            pooled[e.round] = cell
        else:
            cells.setdefault(node, {})[e.round] = cell
        for key, value in mapping(p.get("thresholds")).items():
            if (v := number(value)) is not None:
                thresholds.setdefault(text(key), v)
        for name in mapping(p.get("features")):
            if text(name) not in features:
                features.append(text(name))
    not_recorded = None
    if not cells and not pooled:
        not_recorded = state.why_off or ("monitoring was on, but no monitor.drift entry was recorded: no node "
                                         "shared a summary (each node's policy decides whether it shares one)")
    return Drift(cells, pooled, thresholds, features, reference, not_recorded)


def _drift_cell(node: str, r: int, payload: dict[str, Any] | None) -> DriftCell:
    if payload is None:
        return DriftCell(node, r, UNREADABLE, None, "", [], [], None, None, None)
    features = mapping(payload.get("features"))
    psi = {text(f): v for f, stats in features.items() if (v := number(mapping(stats).get("psi_reference"))) is not None}
    worst = max(psi, key=lambda f: (psi[f], f)) if psi else ""
    verdict = text(payload.get("verdict"))
    moderate = sorted(text(f) for f, stats in features.items() if mapping(stats).get("verdict") == MODERATE)
    return DriftCell(node, r, verdict if verdict in VERDICTS else UNREADABLE, psi.get(worst), worst,
                     names(payload.get("drifting_features")), moderate, integer(payload.get("rows")),
                     integer(payload.get("reference_round")), number(mapping(payload.get("labels")).get("psi_reference")))


def build_node_health(entries: Sequence[Recorded], state: MonitoringState) -> NodeHealth:
    """Per-node metrics per round from monitor.metrics: worst node, spread, the nodes below the floor."""
    rounds: list[RoundMetrics] = []
    for e in entries:
        if e.entry_type != MONITOR_METRICS or e.payload is None:
            continue
        p = e.payload
        r = integer(p.get("round")) if e.round is None else e.round
        if r is None:
            continue
        g, drift = mapping(p.get("global")), mapping(p.get("drift"))
        nodes = {text(n): v for n, value in mapping(p.get("nodes")).items() if (v := number(value)) is not None}
        rounds.append(RoundMetrics(
            r, text(p.get("metric")) or "accuracy", number(g.get("value")), number(g.get("best")),
            integer(g.get("best_round")), number(g.get("baseline")), number(g.get("drop_from_best")), nodes,
            _named_value(p.get("worst")), _named_value(p.get("best_node")), number(p.get("spread")),
            number(p.get("floor")), names(p.get("flagged")), names(drift.get("significant")),
            names(drift.get("moderate")), number(drift.get("share_significant"))))
    rounds.sort(key=lambda x: x.round)
    flagged: dict[str, list[int]] = {}
    for x in rounds:
        for node in x.flagged:
            flagged.setdefault(node, []).append(x.round)
    not_recorded = None
    if not rounds:
        not_recorded = state.why_off or "monitoring was on, but no monitor.metrics entry was recorded"
    return NodeHealth(rounds, dict(sorted(flagged.items())), not_recorded)


def _named_value(value: Any) -> tuple[str, float] | None:
    found = mapping(value)
    node, v = text(found.get("node_id")), number(found.get("value"))
    return (node, v) if node and v is not None else None
