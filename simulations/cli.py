"""`fedgov sim`: run simulated federations through Flower's Simulation Engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from fedgov.settings import FAULTS, RunSettings, default_run_config, parse_nodes
from fedgov.strategies import STRATEGIES
from governance.errors import UsageError



def _shown_defaults() -> dict:
    """pyproject.toml's [tool.flwr.app.config], the one place for every default. Without it (fedgov
    installed apart from its app) the other commands still work, and `sim run` says what is missing."""
    try:
        return default_run_config()
    except UsageError:
        return {}


DEFAULTS = _shown_defaults()

app = typer.Typer(
    help="Run simulated federations on one machine (Flower Simulation Engine, Ray backend).",
    no_args_is_help=True,
)


def print_summary(result: dict[str, Any], console: Console | None = None) -> None:
    """The final summary: accuracy and nodes per round, and the wall time."""
    console = console or Console()
    table = Table(title="federated run summary")
    for column in ("round", "selected", "aggregated", "rejected", "accuracy", "loss", "status"):
        table.add_column(column, justify="right")
    initial = result.get("initial_eval") or {}
    if initial:
        table.add_row("0 (initial)", "-", "-", "-", f"{initial['accuracy']:.3f}", f"{initial['loss']:.3f}", "")
    for r in result["rounds"]:
        ev = r.get("eval", {})
        table.add_row(
            str(r["round"]), str(len(r["selected"])), str(len(r.get("replies", []))),
            str(len(r.get("rejected", []))), f"{ev.get('accuracy', float('nan')):.3f}",
            f"{ev.get('loss', float('nan')):.3f}", r.get("status", "?"),
        )
    console.print(table)
    failed = sum(1 for r in result["rounds"] if r.get("status") != "ok")
    console.print(f"run {result.get('run_id', '?')}: {len(result['rounds'])} rounds, {failed} failed; "
                  f"wall time: {result['wall_seconds']:.1f} s")


@app.command("run")
def run(
    nodes: int = typer.Option(DEFAULTS.get("num-partitions"), "--nodes", help="Number of simulated team nodes (virtual SuperNodes)."),
    rounds: int = typer.Option(DEFAULTS.get("num-server-rounds"), "--rounds", help="Number of federated rounds."),
    dataset: str = typer.Option(DEFAULTS.get("dataset"), "--dataset", help="Bundled dataset: breast-cancer or digits."),
    partition: str = typer.Option(DEFAULTS.get("partition"), "--partition", help="Partitioner: iid, or dirichlet (label-skewed non-IID)."),
    alpha: float = typer.Option(DEFAULTS.get("alpha"), "--alpha", help="Dirichlet concentration for --partition dirichlet; must be > 0."),
    strategy: str = typer.Option(
        DEFAULTS.get("strategy"), "--strategy", help=f"Flower strategy: {', '.join(STRATEGIES)}."
    ),
    fraction: float = typer.Option(DEFAULTS.get("fraction-train"), "--fraction", help="Fraction of nodes trained per round, in (0, 1]."),
    seed: int = typer.Option(DEFAULTS.get("seed"), "--seed", help="Seed for data splits, model init and node sampling."),
    gpus_per_node: float = typer.Option(0.0, "--gpus-per-node", help="GPUs reserved per node (Flower client resources); >0 trains on cuda."),
    cpus_per_node: float = typer.Option(1.0, "--cpus-per-node", help="CPUs reserved per node (Flower client resources)."),
    out: Path = typer.Option(Path("fedgov-runs/latest"), "--out", help="Run directory: config, per-round metrics JSON, final model."),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="Attach to an existing Ray cluster (e.g. 127.0.0.1:6379) instead of starting one."
    ),
    faults: str = typer.Option(DEFAULTS.get("faults"), "--faults", help=f"Rehearse faulty or hostile nodes: PARTITION:KIND,... (kinds: {', '.join(FAULTS)})."),
    min_valid_replies: int = typer.Option(DEFAULTS.get("min-valid-replies"), "--min-valid-replies", help="Below this many valid replies a round fails and keeps the model."),
    local_epochs: int = typer.Option(DEFAULTS.get("local-epochs"), "--local-epochs", help="Local epochs per round on each node."),
    purpose: str = typer.Option(DEFAULTS.get("purpose"), "--purpose", help="The purpose the run declares; only nodes with valid consent for it train."),
    operator: Optional[str] = typer.Option(None, "--operator", help="Who launches the run (recorded in the ledger); default: the login name."),
    workspace: Optional[Path] = typer.Option(None, "--workspace", help="fedgov workspace (default: $FEDGOV_HOME, else the nearest .fedgov)."),
    grant_consent: bool = typer.Option(True, "--grant-consent/--no-grant-consent", help="Grant the simulated nodes consent for --purpose where they lack it."),
    no_consent: str = typer.Option("", "--no-consent", help="Simulated nodes left without consent, e.g. sim-0003,sim-0007."),
    revoke: str = typer.Option(DEFAULTS.get("revoke"), "--revoke", help="Rehearse withdrawal: NODE@ROUND withdraws consent before that round, e.g. sim-0002@2."),
    drift: str = typer.Option(DEFAULTS.get("drift"), "--drift", help="Rehearse data change: NODE@ROUND's data shifts from that round on, e.g. sim-0001@2."),
    trace_dir: Optional[Path] = typer.Option(
        None, "--trace-dir", help="Each simulated node writes which pool rows it trained on, per round (data-locality evidence)."
    ),
    dp: str = typer.Option(DEFAULTS.get("dp"), "--dp", help="Differential privacy through Flower's wrappers: none, server-fixed or client-fixed (docs/privacy.md)."),
    dp_noise_multiplier: float = typer.Option(DEFAULTS.get("dp-noise-multiplier"), "--dp-noise-multiplier", help="Gaussian noise multiplier sigma (stdev sigma * C / number averaged)."),
    dp_clipping_norm: float = typer.Option(DEFAULTS.get("dp-clipping-norm"), "--dp-clipping-norm", help="Clipping norm C of each node's update."),
    dp_delta: float = typer.Option(DEFAULTS.get("dp-delta"), "--dp-delta", help="Delta at which each node's epsilon is accounted."),
    privacy_max_epsilon: float = typer.Option(DEFAULTS.get("privacy-max-epsilon"), "--privacy-max-epsilon", help="Every node's epsilon cap (0: none); a node whose next round would exceed it is excluded."),
    privacy_budgets: str = typer.Option(DEFAULTS.get("privacy-budgets"), "--privacy-budgets", help="Per-node epsilon caps, NODE:EPSILON,... e.g. sim-0002:1.5 (over --privacy-max-epsilon)."),
    verbose: bool = typer.Option(False, "--verbose", help="Show Flower's own log lines."),
    allow_failed_rounds: bool = typer.Option(False, "--allow-failed-rounds", help="Exit 0 even when a round failed (it is still recorded and counted)."),
) -> None:
    """Run a simulated federated training and write its run directory."""
    import getpass

    from simulations.runner import Governance, Resources, run_simulation

    given = {
        "num-server-rounds": rounds, "dataset": dataset, "partition": partition, "alpha": alpha,
        "num-partitions": nodes, "strategy": strategy, "fraction-train": fraction, "seed": seed,
        "device": "cuda" if gpus_per_node > 0 else "cpu", "faults": faults,
        "min-valid-replies": min_valid_replies, "local-epochs": local_epochs,
        "trace-dir": str(trace_dir.resolve()) if trace_dir else "",
        "purpose": purpose, "operator": operator or getpass.getuser(), "revoke": revoke, "drift": drift,
        "dp": dp, "dp-noise-multiplier": dp_noise_multiplier, "dp-clipping-norm": dp_clipping_norm,
        "dp-delta": dp_delta, "privacy-max-epsilon": privacy_max_epsilon, "privacy-budgets": privacy_budgets,
    }
    settings = RunSettings.from_run_config({key: value for key, value in given.items() if value is not None})
    if trace_dir:
        try:
            trace_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"cannot create --trace-dir {trace_dir}: {err.strerror}") from None
    resources = Resources(cpus_per_node=cpus_per_node, gpus_per_node=gpus_per_node, ray_address=ray_address)
    governance = Governance(workspace, grant_consent, tuple(parse_nodes(no_consent)))
    result = run_simulation(settings, resources, out, verbose=verbose, governance=governance)
    print_summary(result)
    typer.echo(f"run directory: {out}")
    failed = [r for r in result["rounds"] if r.get("status") != "ok"]
    if failed and not allow_failed_rounds:
        from governance.errors import PolicyError

        first = failed[0]
        raise PolicyError(f"{len(failed)} of {len(result['rounds'])} rounds failed (round {first['round']}: "
                          f"{first.get('failure') or 'no model'}); pass --allow-failed-rounds to accept that")
