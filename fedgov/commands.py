"""The `fedgov` command tree: a small root that mounts each component's CLI group.

Each group lives with the component that owns it. User errors (`FedgovError`) become
one line on stderr and a meaningful exit code, never a traceback. (`fedgov/cli.py` is the
entry point; it imports this module inside its own guard.)
"""

from __future__ import annotations

import sys

import click
import typer

from governance.errors import FedgovError
from simulations.cli import app as sim_app
from governance.cli.audit import app as audit_app
from governance.cli.consent import app as consent_app
from governance.cli.lineage import app as lineage_app
from governance.cli.model import app as model_app

app = typer.Typer(
    name="fedgov",
    help="Governed federated learning on Flower: simulate, audit, consent, lineage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"fedgov {version('fedgov')}")
        raise typer.Exit()


@app.callback()
def root(_version_flag: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                            help="Print fedgov's version and exit.")) -> None:
    """Governed federated learning on Flower: simulate, audit, consent, lineage."""


app.add_typer(sim_app, name="sim")
app.add_typer(audit_app, name="audit")
app.add_typer(consent_app, name="consent")
app.add_typer(lineage_app, name="lineage")
app.add_typer(model_app, name="model")


@app.command("demo")
def demo() -> None:
    """Run the quick-start demo: 10 nodes, 3 rounds, breast-cancer, IID."""
    from simulations.demo import run_demo

    run_demo()


def run() -> None:
    """Run the app, turning user errors into one clear line."""
    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="fedgov", standalone_mode=False)
    except click.ClickException as err:  # a bad option or argument: one line too, with where to look
        ctx = getattr(err, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = " ".join(err.format_message().split())
        typer.echo(f"error: {message}{hint}", err=True)
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        code = err.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        code = 130
    except FedgovError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    if code == 130:  # typer answers Ctrl-C with exit code 130, and says nothing
        typer.echo("interrupted", err=True)
    sys.exit(code if isinstance(code, int) else 0)
