"""`fedgov consent`: grant, revoke, list and show consent records (ISO/IEC TS 27560 fields).

Every grant and withdrawal is an append-only ledger entry; a withdrawal takes effect at
the next round's node selection of any run, including one already running.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from governance.cli.listing import emit
from governance.cli.options import (Format, FormatOpt, IdentityOpt, IdentityPassFileOpt, PassFileOpt, WorkspaceOpt,
                                    open_payload_reader, open_writer, require_known)
from governance.errors import UsageError

app = typer.Typer(name="consent", help="Consent records: who agreed to which purpose, and withdrawals.",
                  no_args_is_help=True, add_completion=False)

COLUMNS = ("record_id", "principal", "team", "purpose", "state", "granted_at", "expires_at", "withdrawn_at")


@app.command("grant")
def grant(
    node: Annotated[str, typer.Option("--node", help="Pseudonymous node id (the principal), e.g. sim-0003.")],
    team: Annotated[str, typer.Option("--team", help="The team the node belongs to.")],
    purpose: Annotated[str, typer.Option("--purpose", help="The processing purpose consented to.")],
    data_category: Annotated[list[str], typer.Option("--data-category", help="A data category covered (repeatable).")],
    notice_version: Annotated[str, typer.Option("--notice-version", help="Version of the privacy notice shown.")],
    notice_file: Annotated[Optional[Path], typer.Option("--notice-file", help="The privacy notice text; its SHA-256 is recorded.")] = None,
    notice_hash: Annotated[Optional[str], typer.Option("--notice-hash", help="SHA-256 of the privacy notice, if the file is not at hand.")] = None,
    collection_method: Annotated[str, typer.Option("--collection-method", help="How consent was collected, e.g. signed-form.")] = "cli",
    expires_at: Annotated[Optional[str], typer.Option("--expires-at", help="RFC 3339 UTC expiry, e.g. 2027-01-01T00:00:00Z.")] = None,
    jurisdiction: Annotated[Optional[str], typer.Option("--jurisdiction", help="Jurisdiction, e.g. EU.")] = None,
    record_id: Annotated[Optional[str], typer.Option("--record-id", help="Record id (default: generated).")] = None,
    actor: Annotated[str, typer.Option("--actor", help="Who records the grant.")] = "compliance",
    workspace: WorkspaceOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Record that a node consented to a purpose."""
    from governance import consent_store
    from governance.clock import utc_now
    from governance.consent import ConsentRecord
    from governance.names import MAX_PURPOSE, check_name

    check_name(node, "--node")
    check_name(team, "--team")
    check_name(purpose, "--purpose", MAX_PURPOSE)
    check_name(actor, "--actor")
    for category in data_category:
        check_name(category, "--data-category")
    if record_id is not None:
        check_name(record_id, "--record-id")
    if (notice_file is None) == (notice_hash is None):
        raise UsageError("give the privacy notice as --notice-file FILE or --notice-hash SHA256 (one of them)")
    if notice_file is not None:
        try:
            notice_hash = consent_store.notice_hash(notice_file.read_text(encoding="utf-8"))
        except OSError as err:
            raise UsageError(f"cannot read --notice-file {notice_file}: {err.strerror}") from None
    record = ConsentRecord(
        record_id=record_id or consent_store.new_record_id(), principal=node, team=team, purpose=purpose,
        data_categories=list(data_category), privacy_notice_version=notice_version,
        privacy_notice_hash=notice_hash or "", collection_method=collection_method,
        granted_at=utc_now(), jurisdiction=jurisdiction, expires_at=expires_at,
    )
    with open_writer(workspace, passphrase_file) as ledger:
        seq = consent_store.grant(ledger, [record], actor)[0]
    typer.echo(f"granted {record.record_id} to {node} for {purpose!r} (ledger entry {seq})")


@app.command("revoke")
def revoke(
    record_id: Annotated[str, typer.Argument(help="The consent record to withdraw.")],
    reason: Annotated[str, typer.Option("--reason", help="Why consent is withdrawn.")] = "withdrawn by the data owner",
    actor: Annotated[str, typer.Option("--actor", help="Who records the withdrawal.")] = "compliance",
    workspace: WorkspaceOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Withdraw consent; from the next round on the node is not selected for that purpose."""
    from governance import consent_store

    with open_writer(workspace, passphrase_file) as ledger:
        seq = consent_store.withdraw(ledger, record_id, reason, actor)
    typer.echo(f"withdrew {record_id} (ledger entry {seq})")


ERASED = "erased"


def _rows(ledger, node: str | None, purpose: str | None) -> list[dict]:
    """Records with their state now; a grant whose node was crypto-shredded is one `erased` row, not nothing."""
    from governance import consent_store
    from governance.consent import consent_state
    from governance.entry_types import CONSENT_GRANTED

    now = datetime.now(timezone.utc)
    rows = []
    erased: dict = {}  # seq -> consent event, None where the key was destroyed
    for record in consent_store.load_records(ledger, erased).values():
        if (node and record.principal != node) or (purpose and record.purpose != purpose):
            continue
        rows.append({**record.to_dict(), "state": consent_state(record, record.purpose, now)})
    if purpose is None:  # an erased record's purpose is unknowable: it cannot match one
        for entry in ledger.query(entry_type=CONSENT_GRANTED, node_id=node):
            if entry.seq in erased and erased[entry.seq] is None:
                rows.append({**{c: ERASED for c in COLUMNS}, "principal": entry.node_id, "expires_at": None,
                             "withdrawn_at": None, "recorded_at": entry.timestamp, "ledger_seq": entry.seq})
    return sorted(rows, key=lambda r: (r["principal"], r["state"] == ERASED, r["granted_at"], r["record_id"]))


@app.command("list")
def list_(
    node: Annotated[Optional[str], typer.Option("--node", help="Only this node.")] = None,
    purpose: Annotated[Optional[str], typer.Option("--purpose", help="Only this purpose.")] = None,
    fmt: FormatOpt = Format.table,
    workspace: WorkspaceOpt = None,
    passphrase_file: PassFileOpt = None,
    identity: IdentityOpt = None,
    identity_passphrase_file: IdentityPassFileOpt = None,
) -> None:
    """Every consent record with its state now (valid, expired, withdrawn, not-yet-valid)."""
    with open_payload_reader(workspace, passphrase_file, identity, identity_passphrase_file=identity_passphrase_file,
                             what={"command": "consent list", "node": node, "purpose": purpose}) as ledger:
        if node is not None:
            require_known(ledger, "node_id", node, "--node")
        rows = _rows(ledger, node, purpose)
    if purpose is not None and not rows:
        raise UsageError(f"--purpose {purpose!r}: no consent record names this purpose"
                         + (f" for node {node!r}" if node else "") + " (a typo? `fedgov consent list` shows them all)")
    emit(rows, fmt, COLUMNS, f"{len(rows)} consent records")


@app.command("show")
def show(
    record_id: Annotated[str, typer.Argument(help="The consent record.")],
    fmt: FormatOpt = Format.table,
    workspace: WorkspaceOpt = None,
    passphrase_file: PassFileOpt = None,
    identity: IdentityOpt = None,
    identity_passphrase_file: IdentityPassFileOpt = None,
) -> None:
    """One record and its history: the grant and any withdrawal, with ledger entries."""
    from governance import entry_types as et

    with open_payload_reader(workspace, passphrase_file, identity, identity_passphrase_file=identity_passphrase_file,
                             what={"command": "consent show", "record_id": record_id}) as ledger:
        rows = [r for r in _rows(ledger, None, None) if r["record_id"] == record_id and r["state"] != ERASED]
        if not rows:
            raise UsageError(f"no consent record {record_id!r}; list them with `fedgov consent list`")
        history = []
        for entry in ledger.query(node_id=rows[0]["principal"]):
            if entry.entry_type not in (et.CONSENT_GRANTED, et.CONSENT_WITHDRAWN):
                continue
            payload = ledger.read_payload(entry)
            if payload.get("record_id", payload.get("record", {}).get("record_id")) == record_id:
                history.append({"seq": entry.seq, "event": entry.entry_type, "at": entry.timestamp,
                                "actor": payload.get("actor"), "reason": payload.get("reason", "")})
    if fmt is Format.json:
        emit([{**rows[0], "history": history}], fmt, (), "")
        return
    emit(rows, fmt, COLUMNS + ("data_categories", "privacy_notice_version", "privacy_notice_hash",
                               "collection_method", "jurisdiction"), f"consent {record_id}")
    emit(history, fmt, ("seq", "event", "at", "actor", "reason"), "history")
