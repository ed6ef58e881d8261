"""`fedgov federation up|down|status`: a local rehearsal of a real federation (see deploy/federation.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="A local rehearsal of a real federation: a TLS coordinator and N authenticated nodes on "
                       "loopback, in separate processes, each node with its own keys, policy and CSV.",
                  no_args_is_help=True)

WorkspaceOpt = Annotated[Optional[Path], typer.Option("--workspace", "-w", help="Workspace directory (default: "
                                                      "$FEDGOV_HOME, else the nearest .fedgov).")]


def _workspace(workspace: Path | None, create: bool = False):
    """The workspace; `up` makes it on first use when a passphrase is set, as `fedgov sim run` does."""
    from governance.keystore import ENV_PASSPHRASE
    from governance.ledger import create_workspace
    from governance.workspace import Workspace

    ws = Workspace.locate(workspace)
    if ws.exists or not create:
        return Workspace.discover(workspace)
    passphrase = os.environ.get(ENV_PASSPHRASE)
    if not passphrase:
        from governance.errors import UsageError

        raise UsageError(f"no fedgov workspace at {ws.path}: run `fedgov audit init`, or set {ENV_PASSPHRASE} to "
                         "create one")
    typer.echo(f"created the workspace {ws.path}")
    return create_workspace(ws.path, passphrase)


@app.command("up")
def up(
    nodes: Annotated[int, typer.Option("--nodes", help="How many nodes (site-01, site-02, …).")] = 3,
    dataset: Annotated[str, typer.Option("--dataset", help="Bundled dataset the nodes' CSVs are cut from: "
                                         "breast-cancer or digits.")] = "breast-cancer",
    alpha: Annotated[float, typer.Option("--alpha", help="Dirichlet concentration of the label-skewed split "
                                         "(small: each node sees few classes).")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split.")] = 42,
    purpose: Annotated[Optional[str], typer.Option("--purpose", help="The purpose every node's policy allows and "
                                                   "consents to.")] = None,
    workspace: WorkspaceOpt = None,
    passphrase_file: Annotated[Optional[Path], typer.Option("--passphrase-file", help="File holding the keystore "
                                                            "passphrase (default: $FEDGOV_PASSPHRASE).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for every node to connect.")] = 180.0,
) -> None:
    """Start a coordinator and N nodes on loopback, registered and with consent; return once all are connected."""
    from deploy.federation import DEFAULT_PURPOSE, FederationFiles, node_ids, prepare
    from deploy.federation import up as bring_up
    from fedgov.datasets import check_dataset
    from fedgov.partition import check_partition
    from governance.errors import UsageError
    from governance.keystore import ENV_PASSPHRASE, passphrase_from
    from governance.names import MAX_PURPOSE, check_name

    if not 1 <= nodes <= 100:
        raise UsageError(f"--nodes must be between 1 and 100, got {nodes}")
    check_dataset(dataset)
    check_partition("dirichlet", alpha)
    if not 10 <= timeout <= 3600:
        raise UsageError(f"--timeout must be between 10 and 3600 seconds, got {timeout:g}")
    purpose = check_name(purpose or DEFAULT_PURPOSE, "--purpose", MAX_PURPOSE)
    if passphrase_file is not None:
        os.environ[ENV_PASSPHRASE] = passphrase_from(passphrase_file, prompt=False)
    ws = _workspace(workspace, create=True)
    _check_passphrase(ws)
    files = FederationFiles.of(ws.path)
    ids = node_ids(nodes)
    prepare(files, ids, dataset, alpha, seed, purpose, typer.echo)
    serve_args = ["--purpose", purpose, "--dataset", dataset, "--nodes", str(nodes)]
    state = bring_up(ws.path, files, serve_args, dict(os.environ), typer.echo, timeout)
    typer.echo(f"federation up: {len(state.nodes)} nodes connected; supervisor pid {state.pid}")
    typer.echo(f"run:    fedgov run --purpose {_quote(purpose)} --nodes {len(state.nodes)} --rounds 3" +
               (f" --dataset {dataset}" if dataset != "breast-cancer" else "") + _workspace_flag(workspace))
    typer.echo(f"status: fedgov federation status{_workspace_flag(workspace)}")
    typer.echo(f"stop:   fedgov federation down{_workspace_flag(workspace)}")


def _check_passphrase(ws) -> None:
    """The registrations and the coordinator's ServerApp open the ledger: a missing or wrong passphrase stops here."""
    from governance.errors import UsageError
    from governance.keystore import ENV_PASSPHRASE
    from governance.ledger import Ledger

    if not os.environ.get(ENV_PASSPHRASE):
        raise UsageError(f"set {ENV_PASSPHRASE} (or give --passphrase-file): the coordinator writes every run to the "
                         "ledger and the rehearsal registers its nodes there")
    with Ledger.open(ws, os.environ[ENV_PASSPHRASE], write=False):
        pass


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _workspace_flag(workspace: Path | None) -> str:
    return f" --workspace {_quote(str(workspace))}" if workspace is not None else ""


@app.command("down")
def down(workspace: WorkspaceOpt = None) -> None:
    """Stop the federation `fedgov federation up` started: exactly its processes, all of them."""
    from deploy.federation import FederationFiles
    from deploy.federation import down as bring_down

    ws = _workspace(workspace)
    state = bring_down(FederationFiles.of(ws.path))
    typer.echo(f"federation down: the coordinator and {len(state.nodes)} nodes stopped (supervisor pid {state.pid})")


@app.command("status")
def status(workspace: WorkspaceOpt = None) -> None:
    """Each node of the running federation, connected or not; exit 1 when any is not connected."""
    from rich.console import Console
    from rich.table import Table

    from deploy.federation import FederationFiles, running_state
    from deploy.federation import status as node_status
    from governance.errors import PolicyError, UsageError

    ws = _workspace(workspace)
    files = FederationFiles.of(ws.path)
    state = running_state(files)
    if state is None:
        raise UsageError(f"no federation is running in {ws.path}; start one with `fedgov federation up`")
    if state.phase != "up":
        raise PolicyError(f"the federation is {state.phase}" + (f": {state.error}" if state.error else "") +
                          f" (supervisor pid {state.pid}; logs in {files.logs})")
    nodes = node_status(state)
    typer.echo(f"federation in {ws.path}: coordinator {state.fleet} (Control API {state.link}), supervisor pid "
               f"{state.pid}, purpose {state.purpose!r}")
    table = Table()
    for column in ("node", "team", "Flower node id", "state"):
        table.add_column(column)
    for node in nodes:
        table.add_row(node.node_id, node.team, node.flower_node_id,
                      "connected" if node.connected else f"[red]stopped: {node.stopped}[/]" if node.stopped
                      else "[red]not connected[/]")
    Console(width=200).print(table)
    offline = [n.node_id for n in nodes if not n.connected]
    if offline:
        raise PolicyError(f"{len(offline)} of {len(nodes)} nodes not connected: {', '.join(offline)} (their logs: "
                          f"{files.logs})")


@app.command("serve", hidden=True)
def serve(purpose: Annotated[str, typer.Option("--purpose")], dataset: Annotated[str, typer.Option("--dataset")],
          nodes: Annotated[int, typer.Option("--nodes")], workspace: WorkspaceOpt = None) -> None:
    """The supervisor `up` starts in its own session; not for direct use."""
    from deploy.federation import FederationFiles, node_ids
    from deploy.federation import serve as supervise
    from fedgov.interrupts import exit_code

    ws = _workspace(workspace)
    try:
        supervise(ws.path, FederationFiles.of(ws.path), purpose, dataset, node_ids(nodes),
                  lambda line: typer.echo(line))
    except KeyboardInterrupt as interrupt:
        typer.echo("federation stopped; every process it started has ended")
        raise typer.Exit(exit_code(interrupt)) from None
