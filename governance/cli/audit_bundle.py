"""`fedgov audit export` and `fedgov audit verify --bundle`: evidence bundles out of a workspace, and checked.

Registered on the `audit` app in governance/cli/audit.py. Verifying runs the travelling
verifier's own code (governance/verify/bundle_check.py), so `python -m governance.verify`
prints the same lines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from governance.cli.options import (IdentityOpt, IdentityPassFileOpt, PassFileOpt, WorkspaceOpt, open_payload_reader,
                                    require_known)
from governance.errors import UsageError, VerificationError

if TYPE_CHECKING:
    from governance.bundle_keys import WrappedKeys
    from governance.bundle_source import BundleSource


def export(out: Annotated[Path, typer.Option("--out", help="The bundle file to write (a zip); must not exist.")],
           run: Annotated[Optional[str], typer.Option("--run", help="Only this run's entries.")] = None,
           since: Annotated[Optional[str], typer.Option("--since", help="Only entries at or after this date or time (UTC; 2026-01-31 or 2026-01-31T12:00:00Z).")] = None,
           until: Annotated[Optional[str], typer.Option("--until", help="Only entries before this date or time.")] = None,
           wrap_to: Annotated[Optional[Path], typer.Option("--wrap-to", help="Also add the data keys of the exported payloads that you can open, wrapped to this recipient's public identity file (N.pub): the recipient reads them with its N.identity.")] = None,
           workspace: WorkspaceOpt = None, passphrase_file: PassFileOpt = None, identity: IdentityOpt = None,
           identity_passphrase_file: IdentityPassFileOpt = None) -> None:
    """Write one evidence bundle (a zip): signed entries with inclusion proofs, checkpoints, keys, consent, lineage."""
    from governance.bundle_records import consent_document, identity_files, lineage_document
    from governance.ledger.bundle import Selection, ledger_time, public_members, signed_rows, write_bundle
    from governance.verify.bundle import CHECKPOINTS_FILE, CONSENT_FILE, LINEAGE_FILE, jcs_line
    from governance.witness import cosignature_members

    recipient = None
    if wrap_to is not None:
        from governance.identities import read_public

        recipient = read_public(wrap_to)
    selection = Selection(run, None if since is None else ledger_time(since, "--since"),
                          None if until is None else ledger_time(until, "--until"))
    if selection.since and selection.until and selection.since >= selection.until:
        raise UsageError(f"--since {since} is not before --until {until}: the selection is empty")
    if out.exists() or out.is_symlink():
        raise UsageError(f"--out {out} exists: a bundle is never written over a file; choose a new name")
    what = {"command": "audit export", "out": str(out), **selection.to_dict(),
            "wrap_to": recipient.label if recipient else None}
    with open_payload_reader(workspace, passphrase_file, identity, what=what,
                             identity_passphrase_file=identity_passphrase_file) as ledger:
        if run is not None:
            require_known(ledger, "run_id", run, "--run")
        rows = signed_rows(ledger.store, selection)
        notes = [json.loads(line)["note"] for line in rows.members[CHECKPOINTS_FILE].splitlines()]
        members = {**rows.members, **public_members(ledger.workspace.trust_path), **identity_files(ledger),
                   **cosignature_members(ledger.workspace.path, notes),
                   CONSENT_FILE: jcs_line(consent_document(ledger, rows.entries, selection.complete)),
                   LINEAGE_FILE: jcs_line(lineage_document(ledger, rows.entries, selection.complete))}
        wrapped = None
        if recipient is not None:
            from governance.bundle_keys import wrap_bundle_keys

            wrapped = wrap_bundle_keys(ledger, ledger.reader, recipient, rows.entries)
            members[wrapped.name] = wrapped.to_bytes()
    write_bundle(out, members, selection)
    typer.echo(f"exported {len(rows.entries)} entries ({selection.describe()}), {rows.checkpoints} checkpoints, "
               f"tree size {rows.tree_size} to {out}")
    if carried := sum(name.startswith("cosignatures/") for name in members):
        typer.echo(f"with the witnesses' cosignatures of {carried} of them (cosignatures/ in the bundle)")
    if wrapped is not None:
        _say_wrapped(wrapped)
    if rows.unsigned:
        typer.echo(f"note: {rows.unsigned} entries after the newest checkpoint are not signed yet and were left out "
                   "(`fedgov audit checkpoint` signs them)", err=True)


def bundle_source(bundle: Path, workspace: Path | None, passphrase_file: Path | None, identity: Path | None,
                  identity_passphrase_file: Path | None, trusted_key: str | None = None) -> BundleSource:
    """A query's evidence from a bundle: verified first (with `trusted_key`, else the key shipped in it), then read
    as `identity` with the keys it carries."""
    import sys

    from governance.bundle_source import BundleSource
    from governance.identities import identity_passphrase, read_identity
    from governance.verify.bundle_check import verify_bundle
    from governance.verify.errors import FedgovError

    if workspace is not None or passphrase_file is not None:
        raise UsageError("--bundle answers from the bundle alone: drop --workspace and --passphrase-file")
    if identity is None:
        raise UsageError(f"{bundle}: a bundle's payloads are encrypted; only an identity it carries data keys for can "
                         "read them: pass --identity FILE (the exporter adds them with `fedgov audit export --wrap-to "
                         "FILE.pub`)")
    from governance.verify.inputs import trusted_keys_option

    keys = trusted_keys_option(trusted_key) if trusted_key is not None else None
    try:
        verify_bundle(bundle, keys)
    except FedgovError as err:
        failures = getattr(err, "failures", [str(err)])
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        kind = UsageError if err.exit_code == 2 else VerificationError
        raise kind(f"{bundle} does not verify, so nothing is read from it: {failures[0]}{more}; see `fedgov audit "
                   "verify --bundle`") from None
    opened = read_identity(identity, identity_passphrase(identity_passphrase_file, prompt=sys.stdin.isatty()))
    source = BundleSource(bundle, opened)
    if keys is None:
        typer.echo(f"note: {bundle} verified with the key shipped in it; pass --trusted-key KEY to pin your own",
                   err=True)
    return source


def verify_bundle_command(bundle: Path, trusted_key: str | None, known_checkpoint: list[Path], as_json: bool,
                          require_cosigned_by: list[str], cosigned: list[Path]) -> None:
    """`fedgov audit verify --bundle`: every failure one `error:` line (exit 1), or the verified line; then, with
    --require-cosigned-by, each witness's cosignature of the newest checkpoint (the bundle's or --cosigned)."""
    from governance.errors import FedgovError
    from governance.verify.bundle_check import verify_bundle
    from governance.verify.inputs import trusted_keys_option

    keys = cosigners = None
    try:
        if cosigned and not require_cosigned_by:
            raise UsageError("--cosigned goes with --require-cosigned-by")
        if require_cosigned_by:
            from governance.cli.witness import check_cosigned, witness_keys_option

            witnesses = witness_keys_option(require_cosigned_by)
        keys = trusted_keys_option(trusted_key) if trusted_key else None
        report = verify_bundle(bundle, keys, known_checkpoint)
        if require_cosigned_by:
            cosigned_size, cosigners = check_cosigned(None, bundle, witnesses, cosigned)
    except FedgovError as err:
        failures = getattr(err, "failures", [str(err)])
        if as_json:
            typer.echo(json.dumps({"verified": False, "error": failures[0], "failures": failures,
                                   "exit_code": err.exit_code}, indent=2))
        for line in failures:
            typer.echo(f"error: {' '.join(line.split())}", err=True)
        raise typer.Exit(err.exit_code) from None
    if as_json:
        trust = "pinned" if keys else ("shipped in the bundle, pinned by the known checkpoints" if known_checkpoint
                                       else "shipped in the bundle")
        typer.echo(json.dumps({**report.to_dict(), "source": "bundle", "trusted_key": trust,
                               **({"cosigned_by": [{"witness": c.witness.to_text(), "tree_size": cosigned_size,
                                                    "time": c.timestamp} for c in cosigners]} if cosigners else {})},
                              indent=2))
    else:
        typer.echo("\n".join(report.lines()))
        for cosignature in cosigners or ():
            from governance.cli.witness import describe

            typer.echo(describe(cosignature, cosigned_size))
    if keys is None:
        typer.echo("note: trusted the bundle's key that signed your --known-checkpoint" if known_checkpoint else
                   "note: trusted the key shipped in the bundle; pass --trusted-key to pin your own copy", err=True)


def _say_wrapped(wrapped: WrappedKeys) -> None:
    """What the recipient of wrapped keys will and will not be able to read, and why."""
    from governance.bundle_keys import REASONS

    total = sum(wrapped.payloads.values())
    typer.echo(f"wrapped {len(wrapped.grants)} of {len(wrapped.payloads)} data keys to {wrapped.recipient.label} as "
               f"{wrapped.name}: it can open {total - sum(wrapped.unreadable().values())} of the {total} payloads")
    for reason, count in sorted(wrapped.unreadable().items()):
        typer.echo(f"note: {wrapped.recipient.name} will not be able to read {count} payload{'s' * (count != 1)}: "
                   f"their data keys were {REASONS[reason]}", err=True)
