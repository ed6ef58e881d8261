"""Options every governance command shares, and how a command opens the ledger."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:  # the ledger (SQLAlchemy, cryptography) loads inside commands only
    from governance.ledger import Ledger

WorkspaceOpt = Annotated[Optional[Path], typer.Option("--workspace", "-w", help="Workspace directory (default: $FEDGOV_HOME, else the nearest .fedgov, like git).")]
PassFileOpt = Annotated[Optional[Path], typer.Option("--passphrase-file", help="File holding the keystore passphrase (default: $FEDGOV_PASSPHRASE).")]


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


FormatOpt = Annotated[Format, typer.Option("--format", help="table (for people), json or csv (for scripts).")]


def open_writer(workspace: Path | None, passphrase_file: Path | None) -> "Ledger":
    """The ledger with its keys, to append entries (and sign them)."""
    from governance.keystore import passphrase_from
    from governance.ledger import Ledger
    from governance.workspace import Workspace

    ws = Workspace.discover(workspace)
    return Ledger.open(ws, passphrase_from(passphrase_file, prompt=sys.stdin.isatty()))


def open_reader(workspace: Path | None, passphrase_file: Path | None) -> "Ledger":
    """The ledger with its keys, database opened read-only: listings that decrypt payloads."""
    from governance.keystore import passphrase_from
    from governance.ledger import Ledger
    from governance.workspace import Workspace

    ws = Workspace.discover(workspace)
    return Ledger.open(ws, passphrase_from(passphrase_file, prompt=sys.stdin.isatty()), write=False)


def require_known(ledger: "Ledger", column: str, value: str, option: str) -> None:
    """A query for a node, run or entry type the ledger never recorded is a typo, not an empty answer.

    For a compliance officer "0 results" reads as "nothing affected": so it must mean that.
    """
    from governance import entry_types as et
    from governance.known_names import unknown_name

    known = set(ledger.distinct(column))
    if column == "entry_type":
        known |= {v for k, v in vars(et).items() if k.isupper() and isinstance(v, str) and "." in v}
        known |= set(et.LEGACY_NAMES)
    if value not in known:
        raise unknown_name(option, value, known)
