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
IdentityOpt = Annotated[Optional[Path], typer.Option("--identity", envvar="FEDGOV_IDENTITY", show_envvar=True, help="Read as this identity (its .identity file) instead of with the operator's passphrase; auditors read every payload (docs/access-policy.md).")]
IdentityPassFileOpt = Annotated[Optional[Path], typer.Option("--identity-passphrase-file", help="File holding the identity's passphrase (default: $FEDGOV_IDENTITY_PASSPHRASE).")]


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


def open_payload_reader(workspace: Path | None, passphrase_file: Path | None, identity: Path | None, *,
                        what: dict, identity_passphrase_file: Path | None = None) -> "Ledger":
    """The ledger opened to read payloads, after recording the read (audit of the audit).

    With `identity` (an `.identity` file) it reads as that identity: the payloads granted to
    it, as the read policy allows. Otherwise with the operator's passphrase (or FEDGOV_KEK).
    Once the ledger has an auditor, one `audit.read` entry (who, `what`: command, filter,
    count, when) is appended before this returns; a read that cannot be recorded (a read-only
    database, for instance) is refused, so nothing is shown unrecorded. An identity also keeps
    its receipt of that entry beside its identity file (`N.receipts`), or nothing is shown. A ledger with no
    auditor records nothing and opens read-only, as before (docs/access-policy.md).
    """
    from governance.audit_reads import record_read
    from governance.keystore import passphrase_from
    from governance.ledger import Ledger
    from governance.workspace import Workspace

    ws = Workspace.discover(workspace)
    if identity is not None:
        from governance.identities import identity_passphrase, read_identity

        opened = read_identity(identity, identity_passphrase(identity_passphrase_file, prompt=sys.stdin.isatty()))
        ledger = Ledger.open_as(ws, opened, write=True)
    else:
        passphrase = passphrase_from(passphrase_file, prompt=sys.stdin.isatty())
        ledger = Ledger.open(ws, passphrase, write=False)
        if not ledger.policy_in_force:
            return ledger
        ledger.close()
        ledger = _recorded(lambda: Ledger.open(ws, passphrase))
    try:
        _recorded(lambda: record_read(ledger, what))
        if identity is not None:  # the identity's own copy, outside the database (governance/ledger/receipts.py)
            from governance.ledger.receipts import keep, receipts_path

            keep(receipts_path(identity), ledger.receipts)
    except BaseException:
        ledger.close()
        raise
    return ledger


def _recorded(step):
    """Run a step of recording a read; a database that refuses the write becomes one line saying nothing is shown."""
    from governance.errors import FedgovError, UsageError

    try:
        return step()
    except FedgovError:
        raise
    except Exception as err:  # noqa: BLE001 - the database drivers' errors (a read-only file or role)
        if not any(c.__module__.split(".")[0] in ("sqlalchemy", "sqlite3", "psycopg") for c in type(err).__mro__):
            raise
        reason = " ".join(str(getattr(err, "orig", None) or err).split())[:160]
        raise UsageError(f"cannot record this read in the ledger (audit of the audit: every decrypting read is "
                         f"recorded first), so nothing is shown: {reason}") from err


def require_known(ledger: "Ledger", column: str, value: str, option: str) -> None:
    """A query for a node, run or entry type the ledger never recorded is a typo, not an empty answer.

    For a compliance officer "0 results" reads as "nothing affected": so it must mean that.
    """
    from governance import entry_types as et
    from governance.known_names import unknown_name

    named: set[str] = set()
    if column == "entry_type":
        named = {v for k, v in vars(et).items() if k.isupper() and isinstance(v, str) and "." in v}
        named |= set(et.LEGACY_NAMES)
    if value in named or (value != "" and ledger.holds(column, value)):
        return
    raise unknown_name(option, value, named | set(ledger.distinct(column)))  # the listing, for the suggestions
