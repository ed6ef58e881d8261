"""`fedgov monitor check`: weigh the retraining triggers against the latest monitoring evidence, and record it.

`fedgov monitor watch`, which launches retraining runs, is mounted on the same group by the
root CLI (cli/monitor_watch.py): launching a run is not the governance layer's job.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from governance.cli.options import PassFileOpt, WorkspaceOpt, open_writer

if TYPE_CHECKING:
    from governance.monitoring.checks import CheckOutcome

app = typer.Typer(name="monitor", help="Monitoring: retraining triggers over the recorded drift and metrics.",
                  no_args_is_help=True, add_completion=False)

FIRED_EXIT = 3  # --exit-code: a trigger fired (0: none did; 1 and 2 keep their meaning: failure, usage)


class CheckFormat(str, Enum):
    table = "table"
    json = "json"


PolicyOpt = Annotated[Path, typer.Option("--policy", help="The retraining policy (TOML; see "
                                         "docs/examples/monitor-policy.toml).")]
RunOpt = Annotated[Optional[str], typer.Option("--run", help="Weigh this run's latest evidence (default: the run "
                                               "whose monitor.metrics entry came last).")]
CheckFormatOpt = Annotated[CheckFormat, typer.Option("--format", help="table (for people) or json (for scripts).")]
ExitCodeOpt = Annotated[bool, typer.Option("--exit-code", help=f"Exit {FIRED_EXIT} when a trigger fired (default: "
                                           "0 whether or not one did).")]


@app.command("check")
def check(
    policy: PolicyOpt,
    run: RunOpt = None,
    fmt: CheckFormatOpt = CheckFormat.table,
    exit_code: ExitCodeOpt = False,
    workspace: WorkspaceOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Print each trigger's statistic, threshold and outcome, and record the check (never trains)."""
    from governance.monitoring.checks import check_and_record
    from governance.monitoring.policy import load_policy
    from governance.names import check_name

    if run is not None:
        check_name(run, "--run")
    parsed = load_policy(policy)
    with open_writer(workspace, passphrase_file) as ledger:
        outcome = check_and_record(ledger, parsed, command="check", run_id=run)
    show(outcome, fmt)
    if exit_code and outcome.fired:
        raise typer.Exit(FIRED_EXIT)


def show(outcome: "CheckOutcome", fmt: CheckFormat = CheckFormat.table) -> None:
    """One check, as a table and lines for people or as the recorded entry (plus its seq) in JSON."""
    if fmt is CheckFormat.json:
        typer.echo(json.dumps({"seq": outcome.seq, **outcome.record}, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    ev = outcome.evidence
    console = Console()
    table = Table(title=f"retraining triggers: run {ev.run_id}, round {ev.round} (monitor.metrics seq "
                        f"{ev.metrics_seq})")
    for column in ("trigger", "statistic", "threshold", "fired"):
        table.add_column(column)
    for r in outcome.results:
        table.add_row(r.name, "-" if r.statistic is None else f"{r.statistic:.4g}", f"{r.threshold:.4g}",
                      "FIRED" if r.fired else "no")
    console.print(table)
    for r in outcome.results:
        typer.echo(f"{r.name}: {r.detail}")
        for node in r.nodes:
            if node in r.features:
                typer.echo(f"  {node}: {', '.join(r.features[node]) or 'labels only'}")
    typer.echo(f"decision: {outcome.decision.decision} ({outcome.decision.reason}); recorded as monitor.trigger "
               f"seq {outcome.seq}")
