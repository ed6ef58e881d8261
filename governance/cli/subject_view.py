"""Draw a subject report (governance/subject.py) for people: a summary, then one rich table per question."""

from __future__ import annotations

from typing import Any


def _short(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    return text[:12] if len(text) == 64 else text


def print_subject(report: dict[str, Any], source: str) -> None:
    """Summary lines, then tables: rounds per run, consent records, withdrawals, models."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    s = report["summary"]
    registration = report["registration"]
    team = registration["team"] if registration else "not registered"
    console.print(f"node {report['node_id']} (team {team}), from {source}")
    console.print(f"its data was used in {s['rounds_using_data']} round(s) of {s['runs_using_data']} run(s); excluded "
                  f"from {s['rounds_excluded']} round(s); {s['models_built_on_it']} model version(s) are built on it")
    shred = report["shredded"]
    if shred:
        console.print(f"keys shredded: yes, at {shred['at']} by {shred['actor']} ({shred['reason']}; entry "
                      f"{shred['seq']}): what it sent and consented to reads as erased")
    else:
        console.print("keys shredded: no")

    for run in report["runs"]:
        table = Table(title=f"run {run['run_id']}: purpose {run['purpose']!r}, started {run['started_at']}, "
                            f"{run['status']}")
        for column in ("round", "selection", "consent in force", "reply", "contributed", "model", "data used"):
            table.add_column(column)
        for r in run["rounds"]:
            selection = r["selection"] or ""
            if r["exclusion_reason"]:
                selection += f" ({r['exclusion_reason']})"
            consent = "" if r["consent_record_id"] is None else f"{r['consent_record_id']} ({r['consent_state']})"
            reply = r["reply"] or ""
            if r["rejection_reason"]:
                reply += f": {r['rejection_reason']}"
            if r["round_failed"]:
                reply += f" [round failed: {r['round_failed']}]"
            table.add_row(str(r["round"]), selection, consent, reply, "yes" if r["contributed"] else "no",
                          _short(r["model_hash"]), "yes" if r["used_data"] else "no")
        console.print(table)

    records = Table(title=f"{len(report['consent']['records'])} consent records")
    for column in ("seq", "record_id", "purpose", "team", "granted_at", "expires_at", "withdrawn_at"):
        records.add_column(column)
    for c in report["consent"]["records"]:
        records.add_row(str(c["seq"]), *(_short(c[k]) for k in ("record_id", "purpose", "team", "granted_at",
                                                                  "expires_at", "withdrawn_at")))
    console.print(records)
    if report["consent"]["withdrawals"]:
        withdrawals = Table(title=f"{len(report['consent']['withdrawals'])} withdrawals")
        for column in ("seq", "record_id", "withdrawn_at", "reason"):
            withdrawals.add_column(column)
        for w in report["consent"]["withdrawals"]:
            withdrawals.add_row(str(w["seq"]), *(_short(w[k]) for k in ("record_id", "withdrawn_at", "reason")))
        console.print(withdrawals)

    models = Table(title=f"{len(report['models'])} model versions built on its data")
    for column in ("model_hash", "made in (run/round)", "how"):
        models.add_column(column)
    for m in report["models"]:
        models.add_row(m["model_hash"], ", ".join(m["made_in"]), m["how"])
    console.print(models)
