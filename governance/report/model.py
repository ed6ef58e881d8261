"""The report's data, built from a run's ledger facts by one pure function: `build_report`.

What each part holds, and where in the ledger it comes from (docs/governance.md, "Entries"):
metrics from `round.evaluated` (global) and `round.reply` (per node: the training loss, and each
node's loss and accuracy of the model it received, on its own local test split); participation from
`round.selection`, `round.reply`, `round.rejected` and `round.aggregated`; consent from the
selections' checks and the consent events; fingerprints and lineage from the replies and
aggregations; the GDPR Art. 30 record from the run's declared purpose, the consent records and
fedgov's own measures. A field the ledger does not record is `None`, shown as "not recorded":
the report never fills a gap with a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from governance import entry_types as et
from governance import reply_metrics
from governance.consent import (ConsentEvent, ConsentRecord, ConsentUsageError, consent_event_from_dict,
                                consent_state, fold_consent, parse_utc)
from governance.report.monitoring import Drift, NodeHealth, build_drift, build_node_health, monitoring_state
from governance.report.privacy import BUDGET_REASON, Privacy, build_privacy
from governance.report.source import CheckpointRow, LedgerFacts, Recorded, Verification
from governance.report.triggers import Triggers, build_triggers

# Participation of one node in one round, in the order a reader asks "did it take part?".
CONTRIBUTED = "contributed"
REPLIED = "replied"  # a valid reply, but the round built no model
REJECTED = "rejected"
EXCLUDED = "excluded"
NOT_DRAWN = "not drawn"
NO_REPLY = "no reply"
ERASED = "erased"
NOT_CANDIDATE = "not a candidate"
PARTICIPATION_STATES = (CONTRIBUTED, REPLIED, REJECTED, EXCLUDED, NOT_DRAWN, NO_REPLY, ERASED, NOT_CANDIDATE)

NOT_RECORDED = None  # shown as "not recorded"

# Per-node accuracy and loss: the node's own evaluation of the model it received, signed with its reply.
NODE_ACCURACY = reply_metrics.LOCAL_ACCURACY
NODE_LOSS = reply_metrics.LOCAL_LOSS
NODE_EVALUATION = (NODE_ACCURACY, NODE_LOSS)


@dataclass(frozen=True)
class Cell:
    state: str
    reason: str = ""


@dataclass(frozen=True)
class Exclusion:
    """A node left out of a round, or a round that failed (node ""), and why."""

    round: int
    node: str
    kind: str  # excluded (consent), rejected (reply checks), failed (the round)
    reason: str


@dataclass(frozen=True)
class ConsentRow:
    record_id: str
    node: str
    team: str
    purpose: str
    data_categories: list[str]
    jurisdiction: str | None
    notice_version: str
    collection_method: str
    granted_at: str
    expires_at: str | None
    withdrawn_at: str | None
    state_at_start: str
    state_at_end: str
    state_now: str


@dataclass(frozen=True)
class Fingerprint:
    node: str
    team: str
    digest: str
    rows: int | None
    label_counts: dict[str, int] | None  # None: a version 2 fingerprint, which carries none
    schema_hash: str
    content_hash: str
    rounds: list[int]


@dataclass(frozen=True)
class Contributor:
    node: str
    team: str
    dataset_digest: str
    update_digest: str
    consent_record_id: str


@dataclass(frozen=True)
class ModelNode:
    """A model version of the run: round 0 is the initial model."""

    model_hash: str
    round: int
    parent_hash: str | None
    contributors: list[Contributor]


@dataclass(frozen=True)
class Art30Item:
    """One item of the GDPR Art. 30(1) record: a value per line, or None when not recorded."""

    article: str
    item: str
    values: list[str] | None
    source: str


@dataclass(frozen=True)
class Report:
    run_id: str
    ledger_id: str
    generated_at: str
    overview: list[tuple[str, str | None]]
    rounds: list[int]  # training rounds recorded, 1..n
    nodes: list[str]
    teams: dict[str, str]
    global_metrics: dict[str, list[tuple[int, float]]]  # round.evaluated: round 0 is the initial model
    train_metrics: dict[str, list[tuple[int, float]]]  # round.aggregated train_metrics
    node_metrics: dict[str, dict[str, list[tuple[int, float]]]]  # metric -> node -> points
    # node -> rounds whose readable reply lacks the node's evaluation (NODE_EVALUATION): recorded before
    # fedgov's nodes sent it, so "not recorded"
    node_evaluation_missing: dict[str, list[int]]
    participation: dict[str, dict[int, Cell]]  # node -> round -> cell
    exclusions: list[Exclusion]
    consent_by_round: dict[str, dict[int, str]]  # node -> round -> state at that round's selection
    consent_records: list[ConsentRow]
    consent_erased: list[str]  # nodes whose consent events were crypto-shredded
    fingerprints: list[Fingerprint]
    models: list[ModelNode]
    verification: Verification
    checkpoints: list[CheckpointRow]  # those that cover the run's entries, up to the first covering its end
    run_fully_signed: bool
    art30: list[Art30Item]
    shredded_nodes: list[str]
    drift: Drift  # monitor.drift: the heatmap (nodes x rounds) and the federation-wide figure
    node_health: NodeHealth  # monitor.metrics: worst node, spread, nodes below the floor
    triggers: Triggers  # monitor.trigger: evaluations of this run's evidence, the runs they started
    privacy: Privacy  # round.privacy (ε per node, caps, exclusions) and round.secagg
    later_runs: list[str] = field(default_factory=list)


def build_report(facts: LedgerFacts) -> Report:
    """The report of one run, from its facts alone (pure: no ledger, no clock, no files)."""
    by_type: dict[str, list[Recorded]] = {}
    for entry in facts.entries:
        by_type.setdefault(entry.entry_type, []).append(entry)
    start = _one(by_type, et.RUN_STARTED)
    finish = _one(by_type, et.RUN_FINISHED)
    started = (start.payload or {}) if start else {}
    config = started.get("config") if isinstance(started.get("config"), dict) else None if start is None else {}
    monitoring = monitoring_state(config)

    selections = {e.round: e.payload for e in by_type.get(et.ROUND_SELECTION, []) if e.round is not None}
    replies: dict[int, dict[str, Recorded]] = {}
    for e in by_type.get(et.ROUND_REPLY, []):
        replies.setdefault(e.round or 0, {})[e.node_id] = e
    rejections: dict[int, dict[str, Recorded]] = {}
    for e in by_type.get(et.ROUND_REJECTED, []):
        rejections.setdefault(e.round or 0, {})[e.node_id or _text((e.payload or {}).get("flower_node_id"))] = e
    aggregated = {e.round: e.payload or {} for e in by_type.get(et.ROUND_AGGREGATED, []) if e.round is not None}
    failed = {e.round: e.payload or {} for e in by_type.get(et.ROUND_FAILED, []) if e.round is not None}
    evaluated = {e.round: e.payload or {} for e in by_type.get(et.ROUND_EVALUATED, []) if e.round is not None}

    rounds = sorted({r for r in (*selections, *replies, *rejections, *aggregated, *failed) if r and r > 0})
    teams = _teams(facts, replies)
    nodes = sorted({*teams, *(n for rs in (replies, rejections) for d in rs.values() for n in d if n),
                    *(_text(n) for s in selections.values() if s for n in s.get("candidates", []))})
    shredded = sorted({_text(p.get("scope"))[len("node:"):] for e in facts.shreds if (p := e.payload)
                       and _text(p.get("scope")).startswith("node:")})

    participation, exclusions = _participation(nodes, rounds, selections, replies, rejections, aggregated, failed)
    records, erased_consent = _consent_records(facts.consent)
    run_start_at = _time(start.timestamp) if start else None
    run_end_at = _time(finish.timestamp) if finish else (_time(facts.entries[-1].timestamp) if facts.entries else None)
    last = facts.entries[-1].seq if facts.entries else -1
    first = facts.entries[0].seq if facts.entries else 0
    return Report(
        run_id=facts.run_id, ledger_id=facts.ledger_id, generated_at=facts.generated_at,
        overview=_overview(facts, start, finish, rounds, nodes),
        rounds=rounds, nodes=nodes, teams=teams,
        global_metrics=_series({r: p.get("metrics") for r, p in evaluated.items()}),
        train_metrics=_series({r: p.get("train_metrics") for r, p in aggregated.items()}),
        node_metrics=_node_metrics(replies),
        node_evaluation_missing=_node_evaluation_missing(replies),
        participation=participation, exclusions=exclusions,
        consent_by_round=_consent_by_round(nodes, selections),
        consent_records=_consent_rows(records, run_start_at, run_end_at, _time(facts.generated_at)),
        consent_erased=sorted(erased_consent),
        fingerprints=_fingerprints(replies, teams),
        models=_models(started, aggregated, replies),
        verification=facts.verification,
        checkpoints=_run_checkpoints(facts.checkpoints, first, last),
        run_fully_signed=any(c.tree_size > last for c in facts.checkpoints),
        art30=_art30(started, records, nodes, teams, selections, shredded),
        shredded_nodes=[n for n in shredded if n in nodes],
        drift=build_drift(facts.entries, monitoring),
        node_health=build_node_health(facts.entries, monitoring),
        triggers=build_triggers(facts.run_id, started, facts.triggers, facts.later_starts),
        privacy=build_privacy(facts.entries, config, {r: s for r, s in selections.items() if r and s},
                              facts.other_releases, facts.run_id),
        later_runs=list(facts.later_runs),
    )


# -- helpers ---------------------------------------------------------------------------------


def _one(by_type: dict[str, list[Recorded]], entry_type: str) -> Recorded | None:
    found = by_type.get(entry_type, [])
    return found[0] if found else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _number(value: Any) -> float | None:
    """A finite number, or None: a metric is plotted only when it is one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _time(text: str | None) -> datetime | None:
    try:
        return parse_utc(text, "timestamp") if text else None
    except ConsentUsageError:
        return None


def _teams(facts: LedgerFacts, replies: dict[int, dict[str, Recorded]]) -> dict[str, str]:
    teams: dict[str, str] = {}
    for e in facts.registrations:
        if e.payload and e.node_id:
            teams[e.node_id] = _text(e.payload.get("team"))
    for by_node in replies.values():
        for node, e in by_node.items():
            if e.payload and node:
                teams.setdefault(node, _text(e.payload.get("team")))
    return teams


def _overview(facts: LedgerFacts, start: Recorded | None, finish: Recorded | None, rounds: list[int],
              nodes: list[str]) -> list[tuple[str, str | None]]:
    p = (start.payload or {}) if start else {}
    f = (finish.payload or {}) if finish else {}
    strategy = p.get("strategy") if isinstance(p.get("strategy"), dict) else {}
    config = p.get("config") if isinstance(p.get("config"), dict) else {}
    planned = config.get("num-server-rounds")
    status = _text(f.get("status")) or None
    if finish is None:
        status = "not finished (no run.finished entry)"
    return [
        ("run", facts.run_id),
        ("purpose", _text(p.get("purpose")) or None),
        ("operator", _text(p.get("operator")) or None),
        ("started", start.timestamp if start else None),
        ("finished", finish.timestamp if finish else None),
        ("status", status),
        ("status reason", _text(f.get("reason")) or None),
        ("rounds", f"{len(rounds)} recorded" + (f" of {planned} planned" if planned is not None else "")),
        ("nodes", f"{len(nodes)} (expected {p['expected_nodes']})" if "expected_nodes" in p else str(len(nodes))),
        ("strategy", _text(strategy.get("name")) or None),
        ("seed", _text(p.get("seed")) if "seed" in p else None),
        ("config hash", _text(p.get("config_hash")) or None),
        ("app hash", _text(p.get("app_hash")) or None),
        ("initial model", _text(p.get("initial_model_hash")) or None),
        ("final model", _text(f.get("final_model_hash")) or None),
    ]


def _series(by_round: dict[int | None, Any]) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    for r in sorted(k for k in by_round if k is not None):
        metrics = by_round[r]
        if not isinstance(metrics, dict):
            continue
        for name, value in sorted(metrics.items()):
            if (number := _number(value)) is not None:
                series.setdefault(str(name), []).append((r, number))
    return series


def _node_metrics(replies: dict[int, dict[str, Recorded]]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """metric -> node -> (round, value), from each accepted reply; `num-examples` is shown with fingerprints."""
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for r in sorted(replies):
        for node, e in sorted(replies[r].items()):
            metrics = (e.payload or {}).get("metrics")
            if not isinstance(metrics, dict):
                continue
            for name, value in sorted(metrics.items()):
                if name != "num-examples" and (number := _number(value)) is not None:
                    out.setdefault(str(name), {}).setdefault(node, []).append((r, number))
    return out


def _node_evaluation_missing(replies: dict[int, dict[str, Recorded]]) -> dict[str, list[int]]:
    """Rounds of each node whose readable reply holds no finite local accuracy and loss (an erased one is erased)."""
    out: dict[str, list[int]] = {}
    for r in sorted(replies):
        for node, e in sorted(replies[r].items()):
            if e.payload is None:
                continue
            metrics = e.payload.get("metrics")
            metrics = metrics if isinstance(metrics, dict) else {}
            if any(_number(metrics.get(name)) is None for name in NODE_EVALUATION):
                out.setdefault(node, []).append(r)
    return out


def _participation(nodes: list[str], rounds: list[int], selections: dict, replies: dict, rejections: dict,
                   aggregated: dict, failed: dict) -> tuple[dict[str, dict[int, Cell]], list[Exclusion]]:
    grid: dict[str, dict[int, Cell]] = {n: {} for n in nodes}
    exclusions: list[Exclusion] = []
    for r in rounds:
        selection = selections.get(r) or {}
        candidates = {_text(n) for n in selection.get("candidates", [])}
        selected = {_text(n) for n in selection.get("selected", [])}
        excluded = selection.get("excluded") if isinstance(selection.get("excluded"), dict) else {}
        contributors = {_text(n) for n in (aggregated.get(r) or {}).get("contributors", [])}
        for node in nodes:
            reply, rejection = replies.get(r, {}).get(node), rejections.get(r, {}).get(node)
            if rejection is not None:
                reason = _text((rejection.payload or {}).get("reason")) if rejection.payload else "(erased)"
                cell = Cell(REJECTED, reason)
                exclusions.append(Exclusion(r, node, REJECTED, reason))
            elif reply is not None:
                if reply.payload is None:
                    cell = Cell(ERASED, "the node's data key was crypto-shredded")
                else:
                    cell = Cell(CONTRIBUTED if node in contributors else REPLIED)
            elif node in excluded:
                why = _text(excluded[node])
                cell = Cell(EXCLUDED, f"{'privacy' if BUDGET_REASON in why else 'consent'}: {why}")
                exclusions.append(Exclusion(r, node, EXCLUDED, cell.reason))
            elif node in selected:
                cell = Cell(NO_REPLY, "selected, but no reply or rejection is recorded")
            elif node in candidates:
                cell = Cell(NOT_DRAWN, "eligible, not drawn by the recorded selection")
            else:
                cell = Cell(NOT_CANDIDATE)
            grid[node][r] = cell
        if r in failed:
            exclusions.append(Exclusion(r, "", "failed", _text(failed[r].get("reason"))))
    return grid, exclusions


def _consent_by_round(nodes: list[str], selections: dict) -> dict[str, dict[int, str]]:
    """The consent state each selection checked (the recorded fact, not a recomputation)."""
    out: dict[str, dict[int, str]] = {n: {} for n in nodes}
    for r, selection in sorted((k, v) for k, v in selections.items() if k):
        checks = (selection or {}).get("checks")
        if not isinstance(checks, dict):
            continue
        for node in nodes:
            check = checks.get(node)
            if isinstance(check, dict):
                out[node][r] = _text(check.get("state"))
    return out


def _consent_records(events: list[Recorded]) -> tuple[dict[str, ConsentRecord], set[str]]:
    parsed: list[ConsentEvent] = []
    erased: set[str] = set()
    for e in events:
        if e.payload is None:
            erased.add(e.node_id)
            continue
        payload = {k: v for k, v in e.payload.items() if k != "actor"}
        try:
            parsed.append(consent_event_from_dict(payload))
        except ConsentUsageError:
            continue  # the signer authenticated it; a record fedgov cannot read is left out, not guessed
    try:
        return fold_consent(parsed, strict=False), erased
    except ConsentUsageError:
        return {}, erased


def _consent_rows(records: dict[str, ConsentRecord], start: datetime | None,
                  end: datetime | None, now: datetime | None) -> list[ConsentRow]:
    def state(record: ConsentRecord, at: datetime | None) -> str:
        """The record's own state for its own purpose at `at` (the selections show what each round checked)."""
        return "unknown" if at is None else consent_state(record, record.purpose, at)

    rows = [ConsentRow(r.record_id, r.principal, r.team, r.purpose, list(r.data_categories), r.jurisdiction,
                       r.privacy_notice_version, r.collection_method, r.granted_at, r.expires_at, r.withdrawn_at,
                       state(r, start), state(r, end), state(r, now))
            for r in records.values()]
    return sorted(rows, key=lambda row: (row.node, row.granted_at, row.record_id))


def _fingerprints(replies: dict[int, dict[str, Recorded]], teams: dict[str, str]) -> list[Fingerprint]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for r in sorted(replies):
        for node, e in sorted(replies[r].items()):
            fp = (e.payload or {}).get("dataset_fingerprint")
            if not isinstance(fp, dict):
                continue
            digest = _text(fp.get("digest"))
            row = found.setdefault((node, digest), {"fp": fp, "rounds": []})
            row["rounds"].append(r)
    out = []
    for (node, digest), row in sorted(found.items()):
        fp = row["fp"]
        labels = fp.get("label_counts") if isinstance(fp.get("label_counts"), dict) else None
        rows = fp.get("rows")
        out.append(Fingerprint(node, teams.get(node, ""), digest,
                               rows if isinstance(rows, int) and not isinstance(rows, bool) else None,
                               None if labels is None else
                               {_text(k): v for k, v in sorted(labels.items()) if isinstance(v, int)},
                               _text(fp.get("schema_hash")), _text(fp.get("content_hash")), row["rounds"]))
    return out


def _models(started: dict, aggregated: dict, replies: dict[int, dict[str, Recorded]]) -> list[ModelNode]:
    models = []
    if started.get("initial_model_hash"):
        models.append(ModelNode(_text(started["initial_model_hash"]), 0, None, []))
    for r in sorted(aggregated):
        agg = aggregated[r]
        contributors = []
        for node in sorted(_text(n) for n in agg.get("contributors", [])):
            found = replies.get(r, {}).get(node)
            if found is None or found.payload is None:  # no reply recorded (never expected), or shredded
                what = ERASED if found is not None else "no reply recorded"
                contributors.append(Contributor(node, what, what, what, what))
                continue
            p = found.payload
            fp = p.get("dataset_fingerprint") if isinstance(p.get("dataset_fingerprint"), dict) else {}
            contributors.append(Contributor(node, _text(p.get("team")), _text(fp.get("digest")),
                                            _text(p.get("update_digest")), _text(p.get("consent_record_id"))))
        models.append(ModelNode(_text(agg.get("output_model_hash")), r, _text(agg.get("input_model_hash")) or None,
                                contributors))
    return models


def _run_checkpoints(checkpoints: list[CheckpointRow], first: int, last: int) -> list[CheckpointRow]:
    """Checkpoints signed while the run was written, up to the first that covers its last entry."""
    out = []
    for c in checkpoints:
        if c.tree_size > first:
            out.append(c)
            if c.tree_size > last:
                break
    return out


SECURITY_MEASURES = [
    "Payloads encrypted at rest with AES-256-GCM under per-scope data keys (one scope per node, per run); "
    "data keys wrapped under a key-encryption key derived from a passphrase with scrypt",
    "Tamper-evident, append-only ledger: every entry is a leaf of an RFC 9162 Merkle tree; Ed25519-signed "
    "checkpoints (C2SP signed notes) at the end of every round and of the run",
    "Signed node replies: each update is signed with the node's own Ed25519 key and checked against the key "
    "registered in the ledger before aggregation; unsigned or forged replies are rejected and recorded",
    "Consent checked before every round's selection; a node without valid consent is never sent anything",
    "Pseudonymous node ids in the plaintext index; personal data only inside encrypted payloads",
    "Erasure by crypto-shredding: destroying a node's data key makes its payloads unreadable for good "
    "while the ledger still verifies",
    "Training data never leaves the node: only model updates, metrics and dataset fingerprints are sent",
]


def _art30(started: dict, records: dict[str, ConsentRecord], nodes: list[str], teams: dict[str, str],
           selections: dict, shredded: list[str]) -> list[Art30Item]:
    """GDPR Art. 30(1) items, from what the run declared, its consent records and fedgov's measures."""
    purpose = _text(started.get("purpose")) or None
    operator = _text(started.get("operator")) or None
    mine = [r for r in records.values() if r.principal in nodes and (purpose is None or r.purpose == purpose)]
    categories = sorted({c for r in mine for c in r.data_categories})
    jurisdictions = sorted({r.jurisdiction for r in mine if r.jurisdiction})
    expiries = sorted({f"{r.record_id}: consent expires {r.expires_at}" for r in mine if r.expires_at})
    notices = sorted({f"privacy notice {r.privacy_notice_version} (sha256 {r.privacy_notice_hash})" for r in mine})
    selected = sorted({_text(n) for s in selections.values() if s for n in s.get("selected", [])})
    team_names = sorted({t for n, t in teams.items() if n in nodes and t})
    return [
        Art30Item("30(1)(a)", "controller (name and contact details)", None,
                  "the ledger records the run's operator"
                  + (f" ({operator})" if operator else "") + ", not the controller or its representative or DPO"),
        Art30Item("30(1)(b)", "purposes of the processing", [purpose] if purpose else None,
                  "run.started purpose; every consent record names the purpose consented to"),
        Art30Item("30(1)(b)", "lawful basis recorded", [f"consent (GDPR Art. 6(1)(a)): {len(mine)} consent "
                                                        f"record(s) for this purpose", *notices] if mine else None,
                  "consent.granted records (ISO/IEC TS 27560 fields) of the run's nodes"),
        Art30Item("30(1)(c)", "categories of data subjects", [f"data held by {len(nodes)} node(s) of "
                                                              f"{len(team_names)} team(s): " + ", ".join(team_names)]
                  if team_names else None,
                  "the teams of the nodes (node.registered, round.reply); who the data is about is not recorded"),
        Art30Item("30(1)(c)", "categories of personal data", categories or None,
                  "data categories of the consent records for this purpose"),
        Art30Item("30(1)(d)", "recipients",
                  [f"the coordinator, operated by {operator or 'the operator'}: model updates, training metrics "
                   "and dataset fingerprints (never rows)",
                   f"the {len(selected)} selected node(s): each round's global model"] if started else None,
                  "who received what follows from the run's design; other recipients are not recorded"),
        Art30Item("30(1)(e)", "transfers to third countries",
                  [f"jurisdiction named in consent: {', '.join(jurisdictions)}"] if jurisdictions else None,
                  "consent jurisdiction; where nodes and the coordinator run is not recorded"),
        Art30Item("30(1)(f)", "time limits for erasure",
                  [*expiries, "ledger entries are kept (append-only); erasure is by crypto-shredding a node's "
                   "data key" + (f"; shredded: {', '.join(shredded)}" if shredded else "")],
                  "consent expiry (expires_at); key.destroyed entries; a retention period is not recorded"),
        Art30Item("30(1)(g)", "technical and organisational security measures (Art. 32)", list(SECURITY_MEASURES),
                  "fedgov's own measures (docs/ledger-format.md, docs/governance.md, docs/security.md); "
                  "organisational measures are not recorded"),
    ]
