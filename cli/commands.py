"""The `fedgov` command tree: a small root that mounts each component's CLI group.

Each group lives with the component that owns it. User errors (`FedgovError`) become
one line on stderr and a meaningful exit code, never a traceback. (`cli/main.py` is the
entry point; it imports this module inside its own guard.)
"""

from __future__ import annotations

import sys

import click
import typer

from fedgov.interrupts import Terminated, exit_code, last_was_sigterm, signal_name
from governance.errors import FedgovError
from deploy.cli import app as certs_app, app_app, node_app, run_command, server_app
from deploy.federation_cli import app as federation_app
from simulations.cli import app as sim_app
from governance.cli.audit import app as audit_app
from governance.cli.consent import app as consent_app
from governance.cli.identity import app as identity_app
from governance.cli.lineage import app as lineage_app
from governance.cli.model import app as model_app
from governance.cli.privacy import app as privacy_app
from governance.cli.report import report as report_command

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
app.add_typer(certs_app, name="certs")
app.add_typer(node_app, name="node")
app.add_typer(app_app, name="app")
app.command("run")(run_command)
app.add_typer(server_app, name="server")
app.add_typer(federation_app, name="federation")
app.add_typer(audit_app, name="audit")
app.add_typer(consent_app, name="consent")
app.add_typer(identity_app, name="identity")
app.add_typer(lineage_app, name="lineage")
app.add_typer(model_app, name="model")
app.add_typer(privacy_app, name="privacy")
app.command("report")(report_command)


@app.command("demo")
def demo() -> None:
    """Run the quick-start demo: 10 nodes, 3 rounds, breast-cancer, IID."""
    from simulations.demo import run_demo

    run_demo()


def run() -> None:
    """Run the app, turning user errors into one clear line."""
    _refuse_undecodable_arguments(sys.argv[1:])
    command = typer.main.get_command(app)
    try:
        # Not `command.main`: typer's would turn a Ctrl-C or SIGTERM that a command does not handle itself into a
        # silent exit 130; invoked directly, it reaches the handler below and is one line, with 130 or 143.
        with command.make_context("fedgov", sys.argv[1:]) as ctx:
            code = command.invoke(ctx)
    except click.ClickException as err:  # a bad option or argument: one line too, with where to look
        ctx = getattr(err, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = " ".join(err.format_message().split())
        _error(f"{message}{hint}")
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:  # --help, --version, or a command's own typer.Exit
        code = err.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt) as err:  # Ctrl-C, or SIGTERM (fedgov.interrupts)
        interrupt = err if isinstance(err, KeyboardInterrupt) else err.__cause__  # click wraps it in Abort
        if not isinstance(interrupt, KeyboardInterrupt):  # an aborted prompt
            interrupt = Terminated() if last_was_sigterm() else KeyboardInterrupt()
        _error(f"interrupted by {signal_name(interrupt)}")
        sys.exit(exit_code(interrupt))
    except FedgovError as err:
        _error(str(err))
        sys.exit(err.exit_code)
    except OSError as err:  # the file system or the machine refused (a full disk, /proc, a vanished path)
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        _error(f"{err.strerror or err}{where}: the command could not finish; nothing it reported done is lost")
        sys.exit(1)
    except Exception as err:  # noqa: BLE001 - only database drivers' own errors are turned into a line here
        if not _is_database_error(err):
            raise
        first = " ".join(str(getattr(err, "orig", None) or err).split())[:200]
        _error(f"the ledger database refused or failed ({type(err).__name__}: {first}); if it is corrupt, restore "
               "it from a backup and run `fedgov audit verify`")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _is_database_error(err: BaseException) -> bool:
    """SQLAlchemy's, sqlite3's or psycopg's errors, recognised without importing those modules."""
    return any(cls.__module__.split(".")[0] in ("sqlalchemy", "sqlite3", "psycopg") for cls in type(err).__mro__)


def _error(message: str) -> None:
    """Print `error: message` as exactly one line, whatever the message quotes from the command line.

    Bytes that were not UTF-8 (surrogates) and control characters (a newline in a path, an
    escape sequence) are shown escaped, so they can neither break the line nor the terminal.
    """
    import unicodedata

    text = message.encode("utf-8", "backslashreplace").decode("utf-8")
    text = "".join(repr(c)[1:-1] if unicodedata.category(c) == "Cc" else c for c in text)
    typer.echo(f"error: {text}", err=True)


def _refuse_undecodable_arguments(argv: list[str]) -> None:
    """Bytes on the command line that are not UTF-8 reach Python as surrogates; refuse them up front.

    Every name, path and value fedgov records or looks up is UTF-8 text (the ledger's JSON,
    SQL parameters, file names it writes), so such an argument could only fail later, half-way.
    """
    for i, arg in enumerate(argv):
        if any("\udc80" <= c <= "\udcff" for c in arg):
            option = argv[i - 1] if i and argv[i - 1].startswith("-") else "argument"
            _error(f"{option} {arg!r} holds bytes that are not UTF-8; fedgov takes UTF-8 arguments only")
            sys.exit(2)
