"""`fedgov identity`: the key pairs of operators, auditors and node-admins, and registering them in a ledger."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from governance.cli.listing import emit
from governance.cli.options import Format, FormatOpt, IdentityPassFileOpt, PassFileOpt, WorkspaceOpt, open_writer

app = typer.Typer(name="identity", help="Identities (operator, auditor, node-admin): create, register, list.",
                  no_args_is_help=True, add_completion=False)

COLUMNS = ("name", "role", "node", "fingerprint", "registered_at", "seq")


@app.command("create")
def create(role: Annotated[str, typer.Option("--role", help="operator, auditor or node-admin.")],
           name: Annotated[str, typer.Option("--name", help="The identity's name, unique in a ledger (a label: no personal data needed).")],
           out: Annotated[Path, typer.Option("--out", help="Existing directory for NAME.identity (private, 0600) and NAME.pub.")],
           node: Annotated[Optional[str], typer.Option("--node", help="The node a node-admin administers.")] = None,
           identity_passphrase_file: IdentityPassFileOpt = None) -> None:
    """Make an identity: X25519 (receives data keys) and Ed25519 (signs its reads) key pairs. Needs no workspace."""
    from governance.identities import Identity, identity_passphrase, write_identity

    identity = Identity.generate(name, role, node)
    passphrase = identity_passphrase(identity_passphrase_file, prompt=sys.stdin.isatty(), confirm=True)
    private_path, public_path = write_identity(identity, out, passphrase)
    typer.echo(f"created {identity.public.label}")
    typer.echo(f"private: {private_path} (keep it; its passphrase opens it)")
    typer.echo(f"public:  {public_path} (give it to the operator: `fedgov identity add {public_path.name}`)")


@app.command("add")
def add(public: Annotated[Path, typer.Argument(help="The identity's NAME.pub file.")],
        actor: Annotated[str, typer.Option("--actor", help="Who registers it.")] = "operator",
        workspace: WorkspaceOpt = None, passphrase_file: PassFileOpt = None) -> None:
    """Register an identity in the ledger (signed, recorded) and grant it the data keys the read policy allows."""
    from governance.identities import read_public

    identity = read_public(public)
    with open_writer(workspace, passphrase_file) as ledger:
        seq, granted = ledger.register_identity(identity, actor)
    typer.echo(f"registered {identity.label} as entry seq {seq}; granted {granted} data keys")
    if identity.role == "auditor":
        typer.echo("sealed payloads (what nodes said, audit.read) written from now on are readable by the auditors "
                   "only (docs/access-policy.md)")


@app.command("list")
def list_(fmt: FormatOpt = Format.table, workspace: WorkspaceOpt = None) -> None:
    """The identities this ledger registered, each checked against the ledger's pinned key. Needs no secret."""
    from governance.ledger import Ledger
    from governance.workspace import Workspace

    with Ledger.open_readonly(Workspace.discover(workspace)) as ledger:
        rows = [{"name": r.public.name, "role": r.public.role, "node": r.public.node or "",
                 "fingerprint": r.public.fingerprint, "registered_at": r.created, "seq": r.seq}
                for r in ledger.identities()]
    emit(rows, fmt, COLUMNS, f"{len(rows)} identities")
