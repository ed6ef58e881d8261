"""`fedgov audit`: create, write to, read and verify the governance ledger.

Every user error is a FedgovError, which the root command prints as one line with a
meaningful exit code: 0 ok, 1 verification failure, 2 usage error.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from governance.cli.audit_bundle import export, verify_bundle_command
from governance.cli.audit_query import register as register_queries
from governance.cli.options import PassFileOpt, WorkspaceOpt, open_writer
from governance.cli.witness import app as witness_app
from governance.errors import UsageError
from governance.workspace import Workspace

# Everything heavy (SQLAlchemy, cryptography, the ledger) is imported inside the commands:
# `fedgov` imports this module on every start-up, whatever the command.

app = typer.Typer(name="audit", help="The encrypted, tamper-evident governance ledger.",
                  no_args_is_help=True, add_completion=False)
app.add_typer(witness_app, name="witness")

register_queries(app)  # log, show, subject: governance/cli/audit_query.py


@app.command("init")
def init(workspace: WorkspaceOpt = None,
         db_url: Annotated[Optional[str], typer.Option("--db-url", envvar="FEDGOV_DB_URL", show_envvar=True,
                                                       help="SQLAlchemy URL (default: SQLite in the workspace).")] = None,
         passphrase_file: PassFileOpt = None) -> None:
    """Create a workspace: keystore, ledger database, trust file, first checkpoint."""
    from governance.keystore import passphrase_from
    from governance.ledger import create_workspace

    ws = Workspace.locate(workspace) if workspace else Workspace.discover(None, must_exist=False)
    if ws.exists:
        raise UsageError(f"a fedgov workspace already exists at {ws.path}")
    passphrase = passphrase_from(passphrase_file, prompt=sys.stdin.isatty(), confirm=True)
    if not passphrase:
        raise UsageError("no passphrase: set FEDGOV_PASSPHRASE, pass --passphrase-file, or run interactively")
    ws = create_workspace(ws.path, passphrase, db_url)
    typer.echo(f"initialised fedgov workspace at {ws.path}")
    typer.echo(f"trusted key: {ws.trust_path.read_text(encoding='utf-8').strip()}")


@app.command("move")
def move(to: Annotated[str, typer.Option("--to", help="SQLAlchemy URL of the database to move the ledger to: a PostgreSQL database with no fedgov tables, or a new SQLite file. No password in it.")],
         workspace: WorkspaceOpt = None) -> None:
    """Move the workspace's ledger to another database: copy every row, check the copy, then switch config.json to it. The old database is left as it was."""
    from governance.ledger.move import WHAT, move_ledger

    done = move_ledger(Workspace.discover(workspace), to, say=typer.echo)
    counts = ", ".join(f"{done.rows[table]} {what}" for table, what in WHAT.items() if table in done.rows)
    checked = done.checked
    typer.echo(f"copied {counts} in {done.copy_s:.1f} s; checked in {done.check_s:.1f} s")
    typer.echo(f"checked the copy: {checked.entries} entries, {checked.checkpoints} checkpoints and "
               f"{checked.cache_nodes} cached tree nodes verify with the pinned key; tree size {checked.entries} and "
               f"root {checked.root_hex} are the source's latest signed checkpoint (#{done.checkpoint_id})")
    typer.echo(f"the workspace now uses {done.target} (config.json); keystore, trusted_keys and latest_checkpoint "
               "are unchanged")
    typer.echo(f"the old database {done.source} is left as it was: keep it as a backup, or remove it")


class VerifyFormat(str, Enum):
    text = "text"
    json = "json"


@app.command("verify")
def verify(workspace: WorkspaceOpt = None,
           trusted_key: Annotated[Optional[str], typer.Option("--trusted-key", help="Verifier key text, or a file of them (default: the workspace trust file, or the bundle's).")] = None,
           bundle: Annotated[Optional[Path], typer.Option("--bundle", help="Verify an evidence bundle (the zip `audit export` writes) instead of a database.")] = None,
           known_checkpoint: Annotated[Optional[list[Path]], typer.Option("--known-checkpoint", help="A checkpoint saved earlier (`fedgov audit checkpoint --out`): the ledger must still contain it. Repeatable.")] = None,
           require_signed: Annotated[bool, typer.Option("--require-signed", help="Fail if any entry is not yet covered by a signed checkpoint.")] = False,
           receipts: Annotated[Optional[list[Path]], typer.Option("--receipts", help="An identity's receipts file (N.receipts, kept beside N.identity by its reads): the ledger must still hold every entry that identity appended. Repeatable.")] = None,
           require_cosigned_by: Annotated[Optional[list[str]], typer.Option("--require-cosigned-by", help="A witness's verifier key (or a file of them): fail unless it cosigned the latest signed checkpoint. Repeatable.")] = None,
           cosigned: Annotated[Optional[list[Path]], typer.Option("--cosigned", help="A cosigned checkpoint file to read besides <workspace or bundle>/cosignatures/. Repeatable.")] = None,
           fmt: Annotated[VerifyFormat, typer.Option("--format", help="text, or json for the whole result.")] = VerifyFormat.text,
           workers: Annotated[int, typer.Option("--workers", min=0, help="Processes that read and hash the entries of a ledger of 262,144 entries or more (0: one per core; 1: this one alone). The result is the same.")] = 0) -> None:
    """Recompute every leaf, the tree and its cache; check every checkpoint against the pinned key. Needs no secret."""
    import json

    from governance.errors import FedgovError, VerificationError
    from governance.ledger.receipts import read_receipts
    from governance.ledger.verify import ReceiptsCheck, load_known_checkpoint, load_trusted_keys, verify_ledger

    if bundle is not None and receipts:
        raise UsageError("--receipts checks a workspace's ledger, not a bundle")
    if bundle is not None:  # the travelling verifier's checks and lines (governance/cli/audit_bundle.py)
        return verify_bundle_command(bundle, trusted_key, known_checkpoint or [], fmt is VerifyFormat.json,
                                     require_cosigned_by or [], cosigned or [])
    try:
        keys = witnesses = cosigners = None
        if require_cosigned_by:
            from governance.cli.witness import check_cosigned, witness_keys_option

            witnesses = witness_keys_option(require_cosigned_by)
        elif cosigned:
            raise UsageError("--cosigned goes with --require-cosigned-by")
        if trusted_key:
            keys = _trusted_keys_option(trusted_key)
        ws = Workspace.discover(workspace)
        known = [load_known_checkpoint(f, keys or load_trusted_keys(ws.trust_path)) for f in known_checkpoint or ()]
        check = ReceiptsCheck([(f, read_receipts(f)) for f in receipts]) if receipts else None
        report = verify_ledger(ws, keys, known, workers=workers, then=check)
        matched = check.found if check else None
        if require_signed and report.unsigned_tail:
            raise VerificationError(f"{report.unsigned_tail} entries after the last signed checkpoint (tree size "
                                    f"{report.signed_size}) are not signed (--require-signed)")
        if witnesses:
            cosigned_size, cosigners = check_cosigned(workspace, None, witnesses, cosigned or [])
    except FedgovError as err:
        if fmt is VerifyFormat.json:
            typer.echo(json.dumps({"verified": False, "error": str(err), "exit_code": err.exit_code}, indent=2))
        raise
    if fmt is VerifyFormat.json:
        typer.echo(json.dumps({**report.to_dict(), "source": "ledger",
                               **({"receipts": matched.to_dict()} if matched else {}),
                               **({"cosigned_by": [{"witness": c.witness.to_text(), "tree_size": cosigned_size,
                                                    "time": c.timestamp} for c in cosigners]} if cosigners else {}),
                               "trusted_key": "pinned"}, indent=2))
    else:
        typer.echo(f"checked {report.entries} entries, {report.checkpoints} checkpoints, root {report.root_hex}")
        if report.known:
            typer.echo(f"known checkpoints: {len(report.known)} matched (tree sizes "
                       f"{', '.join(map(str, report.known))})")
        if report.cache_nodes is not None:
            typer.echo(f"cache: {report.cache_nodes} stored tree nodes match the entries")
        if matched:
            skipped = f"; {matched.other_ledgers} of other ledgers skipped" if matched.other_ledgers else ""
            typer.echo(f"receipts: {matched.matched} of this ledger match its entries ({matched.signed} signed, "
                       f"{matched.unsigned} in the unsigned tail){skipped}")
        if report.unsigned_tail:
            typer.echo(f"unsigned: {report.unsigned_tail} entries after the last signed checkpoint (tree size "
                       f"{report.signed_size}) are not yet covered by a signature")
        for cosignature in cosigners or ():
            from governance.cli.witness import describe

            typer.echo(describe(cosignature, cosigned_size))


def _trusted_keys_option(value: str) -> list:
    from governance.verify.inputs import trusted_keys_option

    return trusted_keys_option(value)


app.command("export")(export)  # governance/cli/audit_bundle.py


@app.command("checkpoint")
def checkpoint(workspace: WorkspaceOpt = None, passphrase_file: PassFileOpt = None,
               out: Annotated[Optional[Path], typer.Option("--out", help="Also save the signed note to this file, for `audit verify --known-checkpoint` later.")] = None,
               adopt: Annotated[bool, typer.Option("--adopt", help="Take the database's latest checkpoint as the workspace's signed head (after `audit verify`); recorded.")] = False,
               actor: Annotated[Optional[str], typer.Option("--actor", help="With --adopt: who decides.")] = None,
               reason: Annotated[Optional[str], typer.Option("--reason", help="With --adopt: why.")] = None) -> None:
    """Sign a checkpoint of the current tree, after proving it extends every checkpoint signed before."""
    from governance.private_files import write_atomic

    if out is not None and (out.is_dir() or not out.parent.is_dir()):
        raise UsageError(f"--out {out}: not a file path in an existing directory")
    if not adopt and (actor or reason):
        raise UsageError("--actor and --reason go with --adopt")
    if adopt:  # only a ledger that verifies on its own (signatures, entries, cache) may be adopted
        from governance.ledger.verify import verify_ledger

        verify_ledger(Workspace.discover(workspace), workspace_head=False)
    with open_writer(workspace, passphrase_file) as ledger:
        note = ledger.adopt_head(actor or "", reason or "") if adopt else ledger.checkpoint()
    if out is not None:
        try:
            write_atomic(out, note.encode("utf-8"))
        except OSError as err:
            raise UsageError(f"cannot write --out {out}: {err.strerror}") from None
    typer.echo(note, nl=False)


@app.command("repair-cache")
def repair_cache(actor: Annotated[str, typer.Option("--actor", help="Who repairs.")],
                 workspace: WorkspaceOpt = None, passphrase_file: PassFileOpt = None) -> None:
    """Rebuild the stored tree nodes from the entries; entries are untouched; the repair is recorded and signed."""
    with open_writer(workspace, passphrase_file) as ledger:
        diff, note = ledger.repair_cache(actor)
    if note is None:
        typer.echo("the cache of tree nodes matches the entries: nothing to repair")
    else:
        typer.echo(f"repaired: {diff.describe()}; recorded and signed at tree size {note.splitlines()[1]}")


@app.command("shred")
def shred(scope: Annotated[str, typer.Argument(help="Scope whose data key to destroy, e.g. node:abc.")],
          actor: Annotated[str, typer.Option("--actor", help="Who orders the destruction.")],
          reason: Annotated[str, typer.Option("--reason", help="Why (e.g. GDPR Art. 17 request id).")],
          workspace: WorkspaceOpt = None, passphrase_file: PassFileOpt = None) -> None:
    """Crypto-shred a scope: its payloads become unreadable for good; the ledger still verifies."""
    from governance.deferred_signals import signals_deferred

    with open_writer(workspace, passphrase_file) as ledger, signals_deferred():  # Ctrl-C after the line, not before
        seq = ledger.shred(scope, actor, reason)
        typer.echo(f"destroyed the data key of scope {scope!r}; recorded as entry seq {seq}")


@app.command("rotate-kek")
def rotate_kek(actor: Annotated[str, typer.Option("--actor", help="Who rotates the key.")],
               workspace: WorkspaceOpt = None, passphrase_file: PassFileOpt = None) -> None:
    """Replace the key-encryption key: data keys are re-wrapped, entries untouched."""
    from governance.deferred_signals import signals_deferred

    with open_writer(workspace, passphrase_file) as ledger, signals_deferred():
        seq = ledger.rotate_kek(actor)
        typer.echo(f"rotated the key-encryption key; recorded as entry seq {seq}")
