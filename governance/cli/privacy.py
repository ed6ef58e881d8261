"""`fedgov privacy budget`: each node's epsilon spent and remaining, recomputed from the recorded DP releases."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from governance.cli.listing import emit
from governance.cli.options import (Format, FormatOpt, IdentityOpt, IdentityPassFileOpt, PassFileOpt, WorkspaceOpt,
                                    open_payload_reader, require_known)

app = typer.Typer(name="privacy", help="Differential privacy: each node's privacy budget (docs/privacy.md).",
                  no_args_is_help=True, add_completion=False)

COLUMNS = ("node_id", "releases", "epsilon_spent", "delta", "cap", "remaining", "runs")


@app.command("budget")
def budget(
    node: Annotated[Optional[str], typer.Option("--node", help="Only this node.")] = None,
    run: Annotated[Optional[str], typer.Option("--run", help="Only the releases of this run (default: every run: "
                                                             "a node's budget spans the runs its data entered).")] = None,
    fmt: FormatOpt = Format.table,
    workspace: WorkspaceOpt = None,
    passphrase_file: PassFileOpt = None,
    identity: IdentityOpt = None,
    identity_passphrase_file: IdentityPassFileOpt = None,
) -> None:
    """Epsilon spent and remaining per node, recomputed from every `round.privacy` release (never a stored epsilon)."""
    from governance import entry_types as et
    from governance.known_names import unknown_name
    from governance.privacy.budget import node_budgets
    from governance.privacy.events import Release

    with open_payload_reader(workspace, passphrase_file, identity, identity_passphrase_file=identity_passphrase_file,
                             what={"command": "privacy budget", "node": node, "run": run}) as ledger:
        if run is not None:
            require_known(ledger, "run_id", run, "--run")
        entries = ledger.query(entry_type=et.ROUND_PRIVACY, run_id=run)
        releases = [Release.from_payload(e.run_id, e.round, ledger.read_payload(e)) for e in entries]
        known = {n for n in ledger.distinct("node_id") if n}
    known |= {n for r in releases for n in (*r.participants, *r.caps)}
    if node is not None and node not in known:
        raise unknown_name("--node", node, known)
    rows = [b.to_dict() for b in node_budgets(releases, [node] if node else known)
            if node is None or b.node_id == node]
    emit(rows, fmt, COLUMNS, f"privacy budget ({len(releases)} DP releases{f' of run {run}' if run else ''})")
