"""`fedgov audit log`, `audit show` and `audit subject`: the compliance officer's questions, one command each.

A filter value that names nothing the ledger recorded (a run, node, team, type, purpose or
round) is a usage error that shows what exists: for a compliance officer "0 entries" reads as
"nothing happened", so it must only ever mean that. Reading payloads needs the keys: every
such call site goes through one opening call, marked, so that reading with an identity (and
recording the read as `audit.read`) is one change per command.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from governance.cli.listing import emit
from governance.cli.options import (Format, IdentityOpt, IdentityPassFileOpt, PassFileOpt, WorkspaceOpt,
                                    open_payload_reader, require_known)
from governance.errors import UsageError, VerificationError
from governance.workspace import Workspace

if TYPE_CHECKING:
    from governance.ledger import Entry, Ledger

TIME_FORM = "an ISO 8601 date or UTC time, e.g. 2026-01-31 or 2026-01-31T12:00:00Z"
LOG_TABLE_COLUMNS = ("seq", "type", "time", "run", "round", "node", "model", "config")
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"


def register(app: typer.Typer) -> None:
    """Add the query commands to `fedgov audit`."""
    app.command("log")(log)
    app.command("show")(show)
    app.command("subject")(subject)


# -- times -------------------------------------------------------------------------------------

def parse_bound(value: str, option: str, *, end: bool) -> datetime:
    """`--since`/`--until`: a date (a whole UTC day: --until includes it) or a UTC time; else a usage error."""
    text = value.strip()
    try:
        if len(text) == 10:  # YYYY-MM-DD
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
            return day + timedelta(days=1) - timedelta(microseconds=1) if end else day
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {value!r} is not a date or time: give {TIME_FORM}") from None
    if parsed.tzinfo is None or parsed.utcoffset() != timedelta(0):
        raise UsageError(f"{option} {value!r} is not in UTC: give {TIME_FORM} (end a time with Z)")
    return parsed


def entry_time(entry: Entry) -> datetime:
    """An entry's timestamp as a time; one that is not RFC 3339 UTC was not written by fedgov."""
    try:
        at = datetime.fromisoformat(entry.timestamp)
    except (TypeError, ValueError):
        at = None
    if at is None or at.utcoffset() != timedelta(0):
        raise VerificationError(f"entry seq {entry.seq} has the timestamp {entry.timestamp!r}, not an RFC 3339 UTC "
                                "time: the row was edited; run `fedgov audit verify`")
    return at


# -- audit log ---------------------------------------------------------------------------------

def log(workspace: WorkspaceOpt = None,
        run: Annotated[Optional[str], typer.Option("--run", help="Run id.")] = None,
        round_: Annotated[Optional[int], typer.Option("--round", help="Round number.", min=0, max=2**53 - 1)] = None,
        node: Annotated[Optional[str], typer.Option("--node", help="Pseudonymous node id.")] = None,
        team: Annotated[Optional[str], typer.Option("--team", help="Entries of the team's nodes (reads the registry: needs the keys).")] = None,
        entry_type: Annotated[Optional[str], typer.Option("--type", help="Entry type.")] = None,
        since: Annotated[Optional[str], typer.Option("--since", help=f"Entries at or after this; {TIME_FORM}.")] = None,
        until: Annotated[Optional[str], typer.Option("--until", help="Entries at or before this (a date: up to its end).")] = None,
        purpose: Annotated[Optional[str], typer.Option("--purpose", help="Entries of runs that declared this purpose (needs the keys).")] = None,
        fmt: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.table,
        decrypt: Annotated[bool, typer.Option("--decrypt", help="Show payloads (needs the keys).")] = False,
        limit: Annotated[Optional[int], typer.Option("--limit", help="At most this many entries.", min=1, max=2**53 - 1)] = None,
        passphrase_file: PassFileOpt = None, identity: IdentityOpt = None,
        identity_passphrase_file: IdentityPassFileOpt = None) -> None:
    """List entries by their plaintext index fields, filtered; --decrypt adds payloads (the read is recorded)."""
    from governance.ledger import Ledger

    start = parse_bound(since, "--since", end=False) if since is not None else None
    stop = parse_bound(until, "--until", end=True) if until is not None else None
    if start is not None and stop is not None and start > stop:
        raise UsageError(f"--since {since} is after --until {until}: nothing can be between them")
    needs_keys = decrypt or team is not None or purpose is not None

    def select(ledger: Ledger) -> list[Entry]:
        for column, value, option in (("entry_type", entry_type, "--type"), ("run_id", run, "--run"),
                                      ("node_id", node, "--node")):
            if value is not None:
                require_known(ledger, column, value, option)
        if round_ is not None:
            _require_round(ledger, run, round_)
        nodes = _team_nodes(ledger, team) if team is not None else None
        runs = _purpose_runs(ledger, purpose) if purpose is not None else None
        narrowed = nodes is not None or runs is not None or start is not None or stop is not None
        chosen = []
        for entry in ledger.query(entry_type, run, round_, node, limit=None if narrowed else limit):
            if (nodes is not None and entry.node_id not in nodes) or (runs is not None and entry.run_id not in runs):
                continue
            if (start is not None or stop is not None) and not _within(entry, start, stop):
                continue
            chosen.append(entry)
            if limit is not None and len(chosen) >= limit:
                break
        return chosen

    count = None
    if needs_keys and team is None and purpose is None:  # index fields alone select: the read record can say how many
        with Ledger.open_readonly(Workspace.discover(workspace)) as listing:
            count = len(select(listing))
    if needs_keys:
        what = {"command": "audit log" + (" --decrypt" if decrypt else ""), "run": run, "round": round_,
                "node": node, "team": team, "type": entry_type, "since": since, "until": until, "purpose": purpose,
                "limit": limit, "count": count}
        ledger = open_payload_reader(workspace, passphrase_file, identity, what=what,
                                     identity_passphrase_file=identity_passphrase_file)
    else:
        ledger = Ledger.open_readonly(Workspace.discover(workspace))
    with ledger:
        entries = select(ledger)
        if decrypt:
            ledger.prefetch_keys(entries)
        records = []
        for entry in entries:
            record = entry.index_fields()
            if decrypt:
                record["payload"] = _payload_or_why(ledger, entry, asked_for_type=entry_type is not None)
            records.append(record)
    title = f"{len(records)} entries"
    if fmt is Format.table:  # for people: short headers, hashes cut to 12 characters
        emit([_log_table_row(r) for r in records], fmt, LOG_TABLE_COLUMNS + (("payload",) if decrypt else ()), title)
    else:  # for scripts: every field, named as stored
        emit(records, fmt, list(records[0]) if records else ["seq"], title)
    if fmt is Format.table and not records:
        typer.echo("0 entries match these filters (every filter names something the ledger recorded)")


def _within(entry: Entry, start: datetime | None, stop: datetime | None) -> bool:
    at = entry_time(entry)
    return (start is None or at >= start) and (stop is None or at <= stop)


def _payload_or_why(ledger: Ledger, entry: Entry, *, asked_for_type: bool = True) -> Any:
    """The payload, or why it cannot be shown; a type this role may not read is refused when asked for by name."""
    from governance.access_policy import SEALED_LABEL, AccessDenied
    from governance.ledger import KeyDestroyedError
    from governance.ledger.envelope import UnknownDataKeyError

    try:
        return ledger.read_payload(entry)
    except AccessDenied:
        if asked_for_type:
            raise
        return SEALED_LABEL
    except UnknownDataKeyError:
        return "<unknown data key>"
    except KeyDestroyedError:
        return "<key destroyed>"


def _log_table_row(record: dict) -> dict:
    return {"seq": record["seq"], "type": record["entry_type"], "time": record["timestamp"], "run": record["run_id"],
            "round": record["round"], "node": record["node_id"], "model": record["model_hash"][:12],
            "config": record["config_hash"][:12], "payload": record.get("payload")}


def _require_round(ledger: Ledger, run: str | None, round_: int) -> None:
    """A round no entry records (in that run) is a typo too."""
    if ledger.query(round=round_, run_id=run, limit=1):
        return
    known = sorted({e.round for e in ledger.query(run_id=run) if e.round is not None})
    where = f"run {run!r}" if run is not None else "this ledger"
    raise UsageError(f"--round {round_} names no round {where} has recorded (it knows: {_ranges(known) or 'none'})")


def _ranges(numbers: list[int]) -> str:
    """1, 2, 3, 5 -> "1-3, 5": a hundred rounds in a few characters."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _team_nodes(ledger: Ledger, team: str) -> set[str]:
    """The nodes of `team`: the registry's word, else (for a node never registered) its consent records'."""
    from governance import consent_store
    from governance.known_names import unknown_name
    from governance.node_store import load_registry

    teams: dict[str, str] = {}
    for record in consent_store.load_records(ledger).values():
        teams[record.principal] = record.team
    registry = load_registry(ledger)
    for node_id in registry.node_ids():
        teams[node_id] = registry.get(node_id).team
    nodes = {n for n, t in teams.items() if t == team}
    if not nodes:
        raise unknown_name("--team", team, set(teams.values()))
    return nodes


def _purpose_runs(ledger: Ledger, purpose: str) -> set[str]:
    """The runs whose run.started declared `purpose`."""
    from governance import entry_types as et
    from governance.known_names import unknown_name

    declared = {e.run_id: p.get("purpose", "") for e in ledger.query(entry_type=et.RUN_STARTED)
                if isinstance(p := _payload_or_why(ledger, e), dict)}  # a shredded run declares nothing readable
    runs = {r for r, p in declared.items() if p == purpose}
    if not runs:
        raise unknown_name("--purpose", purpose, {p for p in declared.values() if p}, says="is no purpose a run declared")
    return runs


# -- audit show --------------------------------------------------------------------------------

def show(seq: Annotated[int, typer.Argument(help="The entry's sequence number.", min=0, max=2**53 - 1)],
         workspace: WorkspaceOpt = None,
         fmt: Annotated[Format, typer.Option("--format", help="table (text for people) or json.")] = Format.table,
         decrypt: Annotated[bool, typer.Option("--decrypt", help="Show the payload (needs the keys; the read is recorded).")] = False,
         passphrase_file: PassFileOpt = None, identity: IdentityOpt = None,
         identity_passphrase_file: IdentityPassFileOpt = None) -> None:
    """One entry with its leaf hash and its inclusion proof in the latest signed checkpoint, checked first."""
    from governance.ledger import Ledger

    if fmt is Format.csv:
        raise UsageError("--format csv lists many entries; `audit show` prints one: use table or json")
    if decrypt:
        ledger = open_payload_reader(workspace, passphrase_file, identity, what={"command": "audit show", "seq": seq},
                                     identity_passphrase_file=identity_passphrase_file)
    else:
        ledger = Ledger.open_readonly(Workspace.discover(workspace))
    with ledger:
        shown = entry_with_proof(ledger, seq)
        if decrypt:
            shown["entry"]["payload"] = _payload_or_why(ledger, ledger.get(seq))
    if fmt is Format.json:
        typer.echo(json.dumps(shown, indent=2, sort_keys=True))
    else:
        typer.echo(_show_text(shown), nl=False)


def entry_with_proof(ledger: Ledger, seq: int) -> dict[str, Any]:
    """Entry `seq`, its leaf hash and, when a signed checkpoint covers it, its verified inclusion proof.

    The leaf hash is recomputed from the row (not taken from the stored column), the
    checkpoint is checked against the workspace's pinned key, and the proof against the
    checkpoint's root: what is printed as proved has been proved.
    """
    import base64

    from governance.ledger.verify import load_trusted_keys
    from governance.verify.checkpoint import CheckpointError, verify_trusted
    from governance.verify.merkle import ProofError, hash_leaf, verify_inclusion

    size = ledger.size()
    if seq >= size:
        raise UsageError(f"no entry with seq {seq}: the ledger holds seq 0 to {size - 1}" if size
                         else f"no entry with seq {seq}: the ledger is empty")
    entry = ledger.get(seq)
    leaf = hash_leaf(entry.leaf_bytes())
    if leaf != entry.leaf_hash:
        raise VerificationError(f"entry seq {seq}: its stored leaf hash is not the hash of its row (the row was "
                                "edited); run `fedgov audit verify`")
    with ledger.store.read() as conn:
        latest = ledger.store.latest_checkpoint(conn)
    shown: dict[str, Any] = {"entry": entry.index_fields(), "leaf_hash": leaf.hex(), "signed": False,
                             "checkpoint": None, "inclusion_proof": None, "tlog_proof": None}
    if latest is None:
        shown["unsigned_reason"] = "the ledger has no signed checkpoint yet"
        return shown
    note = latest["note"]
    try:
        cp = verify_trusted(note, load_trusted_keys(ledger.workspace.trust_path))
    except CheckpointError as err:
        raise VerificationError(f"the latest checkpoint (#{latest['id']}) does not verify with the pinned key: "
                                f"{err}") from err
    shown["checkpoint"] = {"id": latest["id"], "tree_size": cp.size, "root": cp.root.hex(), "note": note}
    if seq >= cp.size:
        shown["unsigned_reason"] = (f"entry seq {seq} is after the last signed checkpoint (tree size {cp.size}): "
                                    "not yet signed; `fedgov audit checkpoint` signs it")
        return shown
    proof = ledger.inclusion_proof(seq, cp.size)
    try:
        verify_inclusion(seq, cp.size, leaf, proof, cp.root)
    except ProofError as err:
        raise VerificationError(f"entry seq {seq}: the inclusion proof does not lead to the signed root of tree "
                                f"size {cp.size}: {err}; run `fedgov audit verify`") from err
    hashes = [base64.b64encode(h).decode() for h in proof]
    shown.update(signed=True, inclusion_proof=hashes,
                 tlog_proof="".join([f"{TLOG_PROOF_HEADER}\n", f"index {seq}\n", *(f"{h}\n" for h in hashes),
                                     "\n", note]))
    return shown


def _show_text(shown: dict[str, Any]) -> str:
    e = shown["entry"]
    lines = [f"entry {e['seq']}"]
    for label, key in (("type", "entry_type"), ("time", "timestamp"), ("run", "run_id"), ("round", "round"),
                       ("node", "node_id"), ("model", "model_hash"), ("config", "config_hash"), ("key id", "key_id")):
        lines.append(f"  {label:<10}{'' if e[key] is None else e[key]}")
    lines.append(f"  {'leaf hash':<10}{shown['leaf_hash']}")
    if "payload" in e:
        lines.append("  payload")
        lines.extend("    " + line for line in json.dumps(e["payload"], indent=2, sort_keys=True).splitlines())
    if not shown["signed"]:
        lines.append(f"not signed: {shown['unsigned_reason']}")
        return "\n".join(lines) + "\n"
    cp = shown["checkpoint"]
    lines.append(f"inclusion proof verified: {len(shown['inclusion_proof'])} hashes lead to the root of checkpoint "
                 f"#{cp['id']} (tree size {cp['tree_size']}), whose signature verifies with the pinned key")
    lines.append("")
    return "\n".join(lines) + "\n" + shown["tlog_proof"]


# -- audit subject -----------------------------------------------------------------------------

def subject(node: Annotated[str, typer.Argument(help="The pseudonymous node id (a data subject's team).")],
            workspace: WorkspaceOpt = None,
            fmt: Annotated[Format, typer.Option("--format", help="table (for people) or json.")] = Format.table,
            passphrase_file: PassFileOpt = None, identity: IdentityOpt = None,
            identity_passphrase_file: IdentityPassFileOpt = None,
            bundle: Annotated[Optional[Path], typer.Option("--bundle", help="Answer from this evidence bundle (a zip) instead of a workspace: it is verified first, and its payloads are read with the keys it carries for --identity.")] = None,
            trusted_key: Annotated[Optional[str], typer.Option("--trusted-key", help="With --bundle: the ledger's verifier key (text or trust file) to verify it with, instead of the key shipped in it.")] = None) -> None:
    """For one node: runs and rounds that used its data, purposes, consent, models built on it, shredding."""
    from governance.evidence import LedgerSource
    from governance.names import check_name
    from governance.subject import subject_report

    if fmt is Format.csv:
        raise UsageError("--format csv does not fit a nested report: use table or json")
    check_name(node, "NODE")
    if trusted_key is not None and bundle is None:
        raise UsageError("--trusted-key goes with --bundle (a workspace is verified with its own pinned key)")
    if bundle is not None:
        from governance.cli.audit_bundle import bundle_source

        source = bundle_source(bundle, workspace, passphrase_file, identity, identity_passphrase_file, trusted_key)
        report = subject_report(source, node)
    else:
        with open_payload_reader(workspace, passphrase_file, identity, what={"command": "audit subject", "node": node},
                                 identity_passphrase_file=identity_passphrase_file) as ledger:
            source = LedgerSource(ledger)
            report = subject_report(source, node)
    if fmt is Format.json:
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        from governance.cli.subject_view import print_subject

        print_subject(report, source.description)
