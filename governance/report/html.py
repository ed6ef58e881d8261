"""The report as one self-contained HTML page: `render_html(report) -> str`, pure.

Inline CSS and inline SVG, no script, nothing fetched: a Content-Security-Policy of
`default-src 'none'` says so to the browser too, so even a string that escaped escaping
could not run. Every value from the ledger goes through `esc`. Sections carry stable ids
(`#metrics`, `#participation`, `#consent`, `#fingerprints`, `#lineage`, `#verification`,
`#art30`, `#drift`, `#node-metrics`, `#triggers`, `#privacy-budget`) and every chart a `data-chart`
attribute. The last four (monitoring and privacy) are drawn by `html_monitoring`.
"""

from __future__ import annotations

import re

from governance.report import model as m
from governance.report.blocks import NOT_RECORDED_HTML
from governance.report.blocks import num as _num
from governance.report.blocks import section as _section
from governance.report.blocks import table as _table
from governance.report.blocks import value as _value
from governance.report.html_monitoring import (drift_section, node_health_section, privacy_section,
                                               triggers_section)
from governance.report.svg import empty, esc, figure, line_chart, lineage_graph, state_grid

PARTICIPATION_COLORS = {m.CONTRIBUTED: "#2e7d32", m.REPLIED: "#81c784", m.REJECTED: "#c62828",
                        m.EXCLUDED: "#f9a825", m.NOT_DRAWN: "#b0bec5", m.NO_REPLY: "#6d4c41",
                        m.ERASED: "#424242", m.NOT_CANDIDATE: "#ffffff"}
CONSENT_COLORS = {"valid": "#2e7d32", "withdrawn": "#c62828", "expired": "#ef6c00", "not-yet-valid": "#90caf9",
                  "wrong-purpose": "#8e24aa", "no-consent": "#9e9e9e"}

CSS = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:24px auto;max-width:1100px;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:2px solid #3367d6;padding-bottom:4px;margin-top:2em}
h3{font-size:1em;margin:0 0 6px}.sub{color:#555;margin-top:4px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:.85em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}th{background:#f0f3f8}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.mono,code{font-family:"DejaVu Sans Mono",monospace;font-size:.92em;word-break:break-all}
figure.chart{display:inline-block;margin:8px 16px 16px 0;vertical-align:top;max-width:100%;overflow-x:auto}
.scroll{max-width:100%;overflow-x:auto}
figure.chart svg{display:block;background:#fff}figcaption{font-size:.8em;color:#555;max-width:640px}
svg text{font-size:11px;font-family:"DejaVu Sans",Arial,sans-serif;fill:#222}svg text.mono{font-size:10px}
.ok{color:#1b5e20;font-weight:bold}.bad{color:#b71c1c;font-weight:bold}.nr{color:#888;font-style:italic}
.placeholder{border:1px dashed #999;padding:8px 12px;background:#fafafa}
nav a{margin-right:12px}
"""

SECTIONS = (("overview", "Run"), ("metrics", "Accuracy and loss"), ("participation", "Participation"),
            ("consent", "Consent"), ("fingerprints", "Dataset fingerprints"), ("lineage", "Lineage"),
            ("verification", "Verification"), ("art30", "Record of processing (GDPR Art. 30)"),
            ("drift", "Drift"), ("node-metrics", "Per-node metrics"), ("triggers", "Retraining triggers"),
            ("privacy-budget", "Privacy budget"))


def render_html(report: m.Report) -> str:
    """The whole page for one run's report."""
    body = "".join([
        f"<h1>Compliance report: run {esc(report.run_id)}</h1>",
        f'<p class="sub">ledger {esc(report.ledger_id)} &middot; generated {esc(report.generated_at)} by '
        "<code>fedgov report</code> from the ledger alone</p>",
        "<nav>" + "".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title in SECTIONS) + "</nav>",
        _overview(report), _metrics(report), _participation(report), _consent(report), _fingerprints(report),
        _lineage(report), _verification(report), _art30(report), drift_section(report), node_health_section(report),
        triggers_section(report), privacy_section(report),
    ])
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>fedgov compliance report: run {esc(report.run_id)}</title><style>{CSS}</style></head>"
            f"<body>{body}</body></html>\n")


# -- building blocks -----------------------------------------------------------------------------


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "metric"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


# -- sections --------------------------------------------------------------------------------------


def _overview(report: m.Report) -> str:
    rows = [(esc(k), f'<span class="mono">{_value(v)}</span>' if k.endswith(("hash", "model")) else _value(v))
            for k, v in report.overview]
    return _section("overview", "Run", _table(("field", "value"), rows))


NODE_CAPTIONS = {
    m.NODE_ACCURACY: "Each node's accuracy of the global model it received (round 1: the initial model; round r: "
                     "round r-1's), on its own local test split, measured before it trained and signed with its "
                     "reply (round.reply metrics).",
    m.NODE_LOSS: "Each node's loss of the global model it received (round 1: the initial model; round r: round "
                 "r-1's), on its own local test split, measured before it trained and signed with its reply "
                 "(round.reply metrics).",
}


def _metrics(report: m.Report) -> str:
    taken: set[str] = set()
    charts = []
    for name, points in report.global_metrics.items():
        slug = _slug(name, taken)
        series = {f"{name} (held-out)": points}
        if (train := report.train_metrics.get(f"train-{name}")) is not None:
            series[f"train-{name} (nodes, mean)"] = train
        if (local := report.train_metrics.get(f"local-{name}")) is not None:
            series[f"local-{name} (nodes' own test data, mean)"] = local
        charts.append(figure(f"chart-global-{slug}", f"Global {name} per round",
                             line_chart(series, x_label="round", y_label=name),
                             "Round 0 is the initial model; evaluated centrally on the held-out split "
                             "(round.evaluated)."))
    node_names = [*m.NODE_EVALUATION, *(n for n in report.node_metrics if n not in m.NODE_EVALUATION)]
    for name in node_names:
        by_node = report.node_metrics.get(name, {})
        slug = _slug(f"node-{name}", taken)
        labels = {node: f"{node} ({report.teams[node]})" if report.teams.get(node) else node for node in by_node}
        svg = (line_chart({labels[n]: pts for n, pts in by_node.items()}, x_label="round", y_label=name) if by_node
               else empty(640, 300, "not recorded: no node of this run reported it"))
        charts.append(figure(f"chart-{slug}", f"{name} per node per round", svg,
                             NODE_CAPTIONS.get(name, "What each node reported with its signed reply "
                                                     "(round.reply metrics).")))
    if not charts:
        charts.append(figure("chart-global-none", "Metrics", line_chart({}, x_label="round", y_label="value")))
    rounds = sorted({r for pts in report.global_metrics.values() for r, _ in pts})
    global_table = _table(["round", *report.global_metrics],
                          [[esc(r), *[_num(v) if (v := dict(pts).get(r)) is not None else "" for pts in
                                      report.global_metrics.values()]] for r in rounds])
    missing = report.node_evaluation_missing
    node_tables = []
    for name in node_names:
        by_node = report.node_metrics.get(name, {})
        gaps = missing if name in m.NODE_EVALUATION else {}
        if not by_node and not gaps:
            continue
        node_tables.append(f"<h3>{esc(name)} per node</h3>" + _table(
            ["node", "team", *[f"round {r}" for r in report.rounds]],
            [[esc(n), esc(report.teams.get(n, "")),
              *[_num(v) if (v := dict(by_node.get(n, [])).get(r)) is not None
                else NOT_RECORDED_HTML if r in gaps.get(n, ()) else "" for r in report.rounds]]
             for n in sorted({*by_node, *gaps})]))
    note = ("<p>Per node: each node evaluates the global model it receives on its own local test split before it "
            f"trains, and signs that loss and accuracy ({esc(m.NODE_LOSS)}, {esc(m.NODE_ACCURACY)}) with its "
            "reply, beside its training loss.")
    if missing:
        note += (" Replies recorded without them (nodes of an earlier fedgov) show <em>not recorded</em>: "
                 + esc("; ".join(f"{n} (round{'s' if len(rs) > 1 else ''} {', '.join(map(str, rs))})"
                                 for n, rs in sorted(missing.items()))) + ".")
    note += "</p>"
    return _section("metrics", "Accuracy and loss per round", "".join(charts), "<h3>Global values</h3>",
                    global_table, note, "".join(node_tables))


def _participation(report: m.Report) -> str:
    cells = {(n, r): (c.state, c.reason) for n, by_round in report.participation.items() for r, c in by_round.items()}
    labels = {n: f"{n} ({report.teams[n]})" if report.teams.get(n) else n for n in report.nodes}
    chart = figure("chart-participation", "Participation: nodes x rounds",
                   state_grid(report.nodes, report.rounds, cells, PARTICIPATION_COLORS, row_labels=labels),
                   "contributed: its verified update went into the round's model; rejected: its reply failed a check "
                   "(reason below); excluded: left out at selection for its consent state; not drawn: eligible "
                   "but not in the round's recorded draw.")
    rows = [(esc(x.round), esc(x.node) if x.node else '<span class="nr">the round</span>', esc(x.kind),
             f'<span class="mono">{esc(x.reason)}</span>') for x in report.exclusions]
    table = (_table(("round", "node", "kind", "reason"), rows) if rows
             else "<p>No node was excluded or rejected in any round, and no round failed.</p>")
    return _section("participation", "Participation per node per round", chart, "<h3>Exclusions and their reasons</h3>",
                    table)


def _consent(report: m.Report) -> str:
    cells = {(n, r): (s, "") for n, by_round in report.consent_by_round.items() for r, s in by_round.items()}
    chart = figure("chart-consent", "Consent state checked at each round's selection",
                   state_grid(report.nodes, report.rounds, cells, CONSENT_COLORS),
                   "The state recorded in round.selection checks for the run's purpose, at the time the "
                   "round selected its nodes.")
    rows = [(esc(c.node), esc(c.team), f'<span class="mono">{esc(c.record_id)}</span>', esc(c.purpose),
             esc(", ".join(c.data_categories)), _value(c.jurisdiction),
             f"{esc(c.notice_version)}<br>{esc(c.collection_method)}", esc(c.granted_at), _value(c.expires_at),
             _value(c.withdrawn_at), f"{esc(c.state_at_start)} &rarr; {esc(c.state_at_end)} &rarr; {esc(c.state_now)}")
            for c in report.consent_records]
    table = _table(("node", "team", "record", "purpose", "data categories", "jurisdiction", "notice, collection",
                    "granted", "expires", "withdrawn", "state: run start → end → report"),
                   rows) if rows else "<p>No consent record of the run's nodes is readable.</p>"
    erased = (f"<p>Consent records erased (crypto-shredded) for: {esc(', '.join(report.consent_erased))}.</p>"
              if report.consent_erased else "")
    return _section("consent", "Consent state of every node during the run", chart, "<h3>Consent records</h3>",
                    table, erased)


def _fingerprints(report: m.Report) -> str:
    rows = [(esc(f.node), esc(f.team), f'<span class="mono">{esc(f.digest)}</span>', _value(f.rows),
             "not sent" if f.label_counts is None else esc(", ".join(f"{k}: {v}" for k, v in f.label_counts.items())),
             f'<span class="mono">{esc(f.schema_hash[:16])}</span>', esc(", ".join(map(str, f.rounds))))
            for f in report.fingerprints]
    note = ("<p>A node listed twice trained on different data in different rounds.</p>" if
            len({f.node for f in report.fingerprints}) < len(report.fingerprints) else "")
    body = (_table(("node", "team", "fingerprint digest", "rows", "label counts", "schema", "rounds"), rows)
            if rows else "<p>No reply with a readable dataset fingerprint.</p>")
    return _section("fingerprints", "Dataset fingerprints", "<p>Each node computes its fingerprint on its own "
                    "machine and signs it with its reply; rows never leave the node.</p>", body, note)


def _lineage(report: m.Report) -> str:
    contributions: dict[str, list[int]] = {}
    for model in report.models:
        for c in model.contributors:
            contributions.setdefault(c.node, []).append(model.round)
    labels = {n: f"{n} ({report.teams[n]})" if report.teams.get(n) else n for n in contributions}
    chart = figure("chart-lineage", "Lineage graph",
                   lineage_graph([(x.model_hash, x.round, x.parent_hash) for x in report.models], contributions,
                                 labels),
                   "Each model version derives from the one before it and from the updates of the nodes linked "
                   "to it (round.aggregated contributors).")
    rows = [(esc(x.round), f'<span class="mono">{esc(x.model_hash)}</span>',
             f'<span class="mono">{_value(x.parent_hash)}</span>', esc(len(x.contributors)),
             esc(", ".join(f"{c.node} [{c.consent_record_id}]" for c in x.contributors)))
            for x in report.models]
    later = (f"<p>Later runs in this ledger: {esc(', '.join(report.later_runs))}. Whether they built on this run's "
             "models: <code>fedgov lineage affected --node NODE</code>.</p>" if report.later_runs else "")
    return _section("lineage", "Lineage", chart,
                    _table(("round", "model", "parent", "contributors", "nodes [consent record]"), rows), later)


def _verification(report: m.Report) -> str:
    v = report.verification
    result = (f'<p class="ok">VERIFIED: {esc(v.message)}; root {esc(v.root_hex)}.</p>' if v.ok
              else f'<p class="bad">VERIFICATION FAILED: {esc(v.message)}</p>')
    signed = ("<p>A signed checkpoint covers every entry of this run.</p>" if report.run_fully_signed else
              '<p class="bad">No signed checkpoint covers the run\'s last entry yet.</p>')
    rows = [(esc(c.tree_size), f'<span class="mono">{esc(c.root_hex)}</span>', esc(c.created))
            for c in report.checkpoints]
    return _section("verification", "Verification and checkpoint roots",
                    "<p>The ledger verifier (<code>fedgov audit verify</code>) ran on the whole ledger as this report "
                    "was made: every leaf recomputed, every checkpoint signature checked against the pinned key.</p>",
                    result, signed, "<h3>Checkpoints signed during the run</h3>",
                    _table(("tree size", "root (SHA-256, hex)", "signed at"), rows))


def _art30(report: m.Report) -> str:
    rows = [(esc(a.article), esc(a.item),
             NOT_RECORDED_HTML if a.values is None else "<br>".join(esc(v) for v in a.values), esc(a.source))
            for a in report.art30]
    return _section("art30", "Record of processing activities (GDPR Art. 30)",
                    "<p>Filled from the run's declared purpose, its consent records and fedgov's own measures. "
                    "Items the ledger does not hold say <em>not recorded</em>: the controller completes them.</p>",
                    _table(("Art.", "item", "recorded value", "source"), rows))
