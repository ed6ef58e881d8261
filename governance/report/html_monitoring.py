"""The page's monitoring and privacy sections: `#drift`, `#node-metrics`, `#triggers`, `#privacy-budget`.

Same conventions as the rest of the page (`html`): inline SVG with a `data-chart` per chart, a
legend of the states drawn, every ledger string escaped, and a section the run recorded nothing
for says what is missing and why, never blank.
"""

from __future__ import annotations

from governance.report import model as m
from governance.report import monitoring as mon
from governance.report.blocks import NOT_RECORDED_HTML, not_recorded, num, section, table, value
from governance.report.svg import esc, figure, heatmap, line_chart, timeline
from governance.report.triggers import NO_RETRAIN, RETRAIN, TriggerCheck, TriggerEvent

DRIFT_COLORS = {mon.SIGNIFICANT: "#d84315", mon.MODERATE: "#ffb300", mon.NONE: "#a5d6a7",
                mon.INSUFFICIENT: "#cfd8dc", mon.UNREADABLE: "#424242"}
TRIGGER_COLORS = {RETRAIN: "#6a1b9a", NO_RETRAIN: "#90a4ae", "erased": "#424242"}


def _n(v: float | None) -> str:
    return NOT_RECORDED_HTML if v is None else num(v)


def _names(items: list[str]) -> str:
    return esc(", ".join(items)) if items else "&mdash;"


def _label(report: m.Report, node: str) -> str:
    return f"{node} ({report.teams[node]})" if report.teams.get(node) else node


# -- drift -----------------------------------------------------------------------------------------


def _psi(cell: mon.DriftCell) -> str:
    return f"{cell.max_psi:.2f}" if cell.max_psi is not None else ""


def _tip(cell: mon.DriftCell) -> str:
    tip = f"{cell.node}, round {cell.round}: {cell.verdict}"
    if cell.max_psi is not None:
        tip += f"; largest PSI against the reference {cell.max_psi:.4g}"
        tip += f" ({cell.max_psi_feature})" if cell.max_psi > 0 else ""
    if cell.reference_round is not None:
        tip += f", reference round {cell.reference_round}"
    if cell.drifting:
        tip += f"; drifting: {', '.join(cell.drifting)}"
    if cell.moderate:
        tip += f"; moderate: {', '.join(cell.moderate)}"
    if cell.rows is not None:
        tip += f"; {cell.rows} rows"
    return tip


def drift_section(report: m.Report) -> str:
    d = report.drift
    intro = ("<p>Each node sends per-feature histograms over shared bin edges, never rows; the coordinator "
             "compares each node's histograms with its own first summary of the run (its reference) and records a "
             "verdict per node per round (monitor.drift). A cell's colour is the node's verdict, its worst feature's; "
             "its number is the largest PSI against the reference. The top row pools every node's summary: the "
             "federation-wide figure.</p>")
    if d.not_recorded:
        return section("drift", "Data drift per node per round", intro, not_recorded("drift", d.not_recorded))
    rounds = sorted({*report.rounds, *d.federation, *(r for c in d.cells.values() for r in c)})
    nodes = sorted({*report.nodes, *d.cells})
    rows = [mon.FEDERATION, *nodes] if d.federation else nodes
    cells = {(c.node, c.round): (c.verdict, _psi(c), _tip(c))
             for c in [*d.federation.values(), *(c for by in d.cells.values() for c in by.values())]}
    for node in nodes:
        for r in rounds:
            cells.setdefault((node, r), ("", "", f"{node}, round {r}: no summary recorded"))
    labels = {n: _label(report, n) for n in nodes} | {mon.FEDERATION: "federation (all nodes pooled)"}
    t = d.thresholds
    caption = ("significant: PSI ≥ {s} or JS ≥ {j}; moderate: PSI ≥ {m}; insufficient: fewer than {k} rows, no "
               "verdict; blank: no summary that round.").format(
        s=_fmt(t.get("psi_significant")), m=_fmt(t.get("psi_moderate")), j=_fmt(t.get("js")), k=_fmt(t.get("min_count")))
    chart = figure("chart-drift", "Drift heatmap: nodes x rounds",
                   heatmap(rows, rounds, cells, DRIFT_COLORS, row_labels=labels,
                           gap_after=1 if d.federation else None), caption)
    fed = table(("round", "verdict", "largest PSI (feature)", "drifting features", "rows"),
                [(esc(c.round), esc(c.verdict), _psi_cell(c), _names(c.drifting), value(c.rows))
                 for _, c in sorted(d.federation.items())]) if d.federation else \
        "<p>No federation-wide figure was recorded.</p>"
    flagged = [c for by in d.cells.values() for c in by.values() if c.verdict != mon.NONE]
    listing = table(("node", "round", "verdict", "largest PSI (feature)", "drifting features (significant)",
                     "moderate features", "rows", "reference round"),
                    [(esc(_label(report, c.node)), esc(c.round), esc(c.verdict), _psi_cell(c), _names(c.drifting),
                      _names(c.moderate), value(c.rows), value(c.reference_round))
                     for c in sorted(flagged, key=lambda c: (c.round, c.node))]) if flagged else \
        "<p>No node drifted: every recorded verdict is <em>none</em>.</p>"
    reference = (f'<p>Reference bins (monitor.reference): <span class="mono">{esc(d.reference)}</span></p>'
                 if d.reference else "")
    return section("drift", "Data drift per node per round", intro, chart, reference,
                   "<h3>Federation-wide figure per round</h3>", fed,
                   "<h3>Nodes with drift, and their drifting features</h3>", listing)


def _fmt(v: float | None) -> str:
    return "?" if v is None else f"{v:g}"


def _psi_cell(c: mon.DriftCell) -> str:
    if c.max_psi is None:
        return NOT_RECORDED_HTML
    return f"{num(c.max_psi)} ({esc(c.max_psi_feature)})" if c.max_psi > 0 else num(c.max_psi)


# -- per-node metrics ------------------------------------------------------------------------------


def node_health_section(report: m.Report) -> str:
    h = report.node_health
    intro = ("<p>After each round the coordinator records the global metric against its best and its first "
             "(baseline) value, each node's metric of the model it received on its own test split (round 1: the "
             "initial model; round r: round r-1's), the worst and best node, the spread between them, and the nodes "
             "below the fairness floor (monitor.metrics).</p>")
    if h.not_recorded:
        return section("node-metrics", "Per-node metrics, degradation and fairness", intro,
                       not_recorded("node-metrics", h.not_recorded))
    metric = h.rounds[-1].metric
    series = {f"global {metric}": [(x.round, x.value) for x in h.rounds if x.value is not None],
              "worst node": [(x.round, x.worst[1]) for x in h.rounds if x.worst],
              "best node": [(x.round, x.best_node[1]) for x in h.rounds if x.best_node],
              "fairness floor": [(x.round, x.floor) for x in h.rounds if x.floor is not None]}
    chart = figure("chart-node-health", f"Global, worst-node and best-node {metric} per round",
                   line_chart({k: v for k, v in series.items() if v}, x_label="round", y_label=metric),
                   "A node under the floor is flagged (named in the table below).")
    flagged = ("<p class=\"bad\">Flagged below the floor: " + esc("; ".join(
        f"{_label(report, n)} (round{'s' if len(rs) > 1 else ''} {', '.join(map(str, rs))})"
        for n, rs in h.flagged.items())) + ".</p>") if h.flagged else \
        "<p>No node fell below the fairness floor in any round.</p>"
    rows = [(esc(x.round), _n(x.value), f"{_n(x.best)} (round {value(x.best_round)})", _n(x.baseline),
             _n(x.drop_from_best), _named(x.worst), _named(x.best_node), _n(x.spread), _n(x.floor),
             f'<span class="bad">{_names(x.flagged)}</span>' if x.flagged else "&mdash;",
             _names(x.drift_significant) + (f" ({num(x.share_significant)})" if x.share_significant is not None
                                             else ""))
            for x in h.rounds]
    summary = table(("round", f"global {metric}", "best (round)", "baseline", "drop from best", "worst node",
                     "best node", "spread", "floor", "flagged", "significant drift (share of nodes)"), rows)
    nodes = sorted({n for x in h.rounds for n in x.nodes})
    per_node = table(["node", *[f"round {x.round}" for x in h.rounds]],
                     [[esc(_label(report, n)), *[_node_value(x, n) for x in h.rounds]] for n in nodes]) if nodes else ""
    return section("node-metrics", "Per-node metrics, degradation and fairness", intro, chart, flagged,
                   "<h3>Per round</h3>", summary, f"<h3>{esc(metric)} per node (monitor.metrics)</h3>", per_node)


def _named(found: tuple[str, float] | None) -> str:
    return NOT_RECORDED_HTML if found is None else f"{esc(found[0])} {num(found[1])}"


def _node_value(x: mon.RoundMetrics, node: str) -> str:
    v = x.nodes.get(node)
    if v is None:
        return ""
    return f'<span class="bad">{num(v)} below floor</span>' if node in x.flagged else num(v)


# -- triggers --------------------------------------------------------------------------------------


def _fired(e: TriggerEvent) -> str:
    return f"fired: {', '.join(e.fired)}" if e.fired else "no trigger fired"


def triggers_section(report: m.Report) -> str:
    t = report.triggers
    intro = ("<p>A retraining policy's triggers are evaluated on the run's recorded evidence by "
             "<code>fedgov monitor check</code> or <code>fedgov monitor watch</code>; every evaluation, including "
             "each decision not to retrain, is a monitor.trigger entry, and a retraining run names the entry that "
             "started it.</p>")
    origin = ""
    if t.started_by is not None:
        e = t.started_by
        origin = (f"<p><strong>This run is a retraining run</strong>, started by monitor.trigger entry {esc(e.seq)} "
                  f"({esc(e.timestamp)}, <code>{esc(e.command or '?')}</code> on run {esc(e.evidence_run)}"
                  f" round {value(e.evidence_round)}): {esc(_fired(e))}; decision {esc(e.decision)}: "
                  f"{esc(e.reason)}.</p>")
    elif t.started_by_seq is not None:
        origin = (f'<p class="bad">This run names monitor.trigger entry {esc(t.started_by_seq)} as its cause, but '
                  "the ledger holds no readable monitor.trigger entry with that seq.</p>")
    if t.not_recorded:
        return section("triggers", "Retraining triggers", intro, origin, not_recorded("triggers", t.not_recorded))
    events = [(e.timestamp[:16].replace("T", " "), f"{e.decision}: {', '.join(e.fired) or 'none fired'}",
               e.decision if e.decision in TRIGGER_COLORS else "erased",
               f"entry {e.seq}: {e.decision}: {e.reason}", e.started_runs) for e in t.events]
    chart = figure("chart-triggers", "Trigger timeline", timeline(events, TRIGGER_COLORS),
                   "One marker per evaluation, in ledger order; a box below is the retraining run it started.")
    rows = [(esc(e.seq), esc(e.timestamp), esc(e.command), value(e.evidence_round),
             "<br>".join(_check(c) for c in e.checks) or NOT_RECORDED_HTML,
             f'<span class="{"bad" if e.decision == RETRAIN else ""}">{esc(e.decision)}</span>', esc(e.reason),
             _names(e.started_runs))
            for e in t.events]
    return section("triggers", "Retraining triggers", intro, origin, chart,
                   table(("entry", "time", "command", "evidence round", "triggers: statistic vs threshold",
                          "decision", "reason", "retraining run"), rows))


def _check(c: TriggerCheck) -> str:
    mark = "<strong>fired</strong>" if c.fired else "not fired"
    stat = "not recorded" if c.statistic is None else f"{c.statistic:.4g}"
    threshold = "not recorded" if c.threshold is None else f"{c.threshold:.4g}"
    where = ""
    if c.features:
        where = "; " + "; ".join(f"{n}: {', '.join(fs)}" for n, fs in sorted(c.features.items()))
    elif c.nodes:
        where = "; nodes: " + ", ".join(c.nodes)
    return f"{esc(c.name)}: {esc(stat)} vs {esc(threshold)}, {mark}" + esc(where)


# -- privacy ---------------------------------------------------------------------------------------


def privacy_section(report: m.Report) -> str:
    p = report.privacy
    intro = ("<p>With differential privacy on, each round records its DP event (round.privacy): mechanism, noise "
             "multiplier, clipping norm, δ and who took part. Each node's ε below is recomputed from those events "
             f"alone ({esc(p.accountant)}) and set beside the ε the coordinator recorded; a node whose next round "
             "would exceed its cap is left out at selection, and that exclusion is recorded.</p>")
    parts = [intro]
    if p.not_recorded:
        parts.append(not_recorded("privacy-budget", p.not_recorded))
    else:
        series = {_label(report, b.node): b.spent for b in p.budgets if b.spent}
        series |= {f"cap {b.node}": [(r, b.cap) for r in report.rounds] for b in p.budgets
                   if b.cap is not None and b.cap != p.run_cap and report.rounds}
        if p.run_cap is not None and report.rounds:
            series["cap (every node)"] = [(r, p.run_cap) for r in report.rounds]
        parts.append(figure("chart-privacy-budget", "ε spent per node", line_chart(series, x_label="round",
                                                                                   y_label="ε"),
                            "ε after each round the node took part in, recomputed from the recorded DP events (a node's "
                            "releases in earlier runs included: its budget is its own across runs)."))
        if p.problem:
            parts.append(f'<p class="bad">{esc(p.problem)}; the figures below stop there.</p>')
        parts.append(table(("node", "rounds under DP", "ε before this run", "ε spent (recomputed)", "ε recorded",
                            "agree", "cap", "remaining", "excluded for its budget"),
                           [(esc(_label(report, b.node)), esc(", ".join(map(str, b.rounds))) or "&mdash;",
                             num(b.before), num(b.total), _n(b.recorded),
                             {True: '<span class="ok">yes</span>', False: '<span class="bad">NO</span>',
                              None: NOT_RECORDED_HTML}[b.agrees],
                             _n(b.cap) if b.cap is not None else "no cap",
                             _n(b.remaining) if b.cap is not None else "&mdash;",
                             "<br>".join(f'<span class="bad">round {esc(r)}</span>: {esc(why)}' for r, why in b.excluded)
                             or "&mdash;")
                            for b in p.budgets]))
        parts.append("<h3>DP events per round</h3>" + table(
            ("round", "dp", "mechanism", "noise multiplier", "clipping norm", "δ", "participants", "accountant"),
            [(esc(x.round), esc(x.dp), esc(x.mechanism), _n(x.noise_multiplier), _n(x.clipping_norm), _n(x.delta),
              esc(len(x.participants)), esc(x.accountant)) for x in p.rounds]))
    parts.append("<h3>Secure aggregation (SecAgg+)</h3>")
    if p.secagg_not_recorded:
        parts.append(not_recorded("secagg", p.secagg_not_recorded))
    else:
        parts.append("<p>With SecAgg+ the server sees only the sum of the updates: the ledger records each round's "
                     "protocol participation and the aggregate's digest instead of per-node update digests "
                     "(round.secagg).</p>" + table(
                         ("round", "protocol", "shares", "threshold", "selected", "nodes per stage", "completed",
                          "dropped", "aggregate", "individual updates visible"),
                         [(esc(x.round), esc(x.protocol), value(x.num_shares), value(x.threshold),
                           esc(len(x.selected)), esc(", ".join(f"{k} {n}" for k, n in x.stages.items())) or "&mdash;",
                           esc(len(x.completed)), _names(x.dropped),
                           f'<span class="mono">{esc(x.aggregate_hash)}</span>' if x.aggregate_hash
                           else "none: the round built no aggregate",
                           value(None if x.individual_updates_visible is None else
                                 ("yes" if x.individual_updates_visible else "no")))
                          for x in p.secagg]))
    return section("privacy-budget", "Privacy budget (differential privacy) and secure aggregation", *parts)
