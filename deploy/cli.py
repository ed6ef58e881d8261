"""`fedgov certs`: make the federation's TLS material (see deploy/certs.py for what each file is)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="Make the federation's TLS material: a private CA, the coordinator's certificate, "
                       "node authentication keys.", no_args_is_help=True)

OutOpt = Annotated[Path, typer.Option("--out", help="Directory to write into (made 0700 if missing).")]
DaysOpt = Annotated[int, typer.Option("--days", help="Validity in days.")]


def _write_new(files: dict[Path, tuple[bytes, bool]]) -> None:
    """Write each file (private ones 0600, the rest as the umask says); refuse before writing any if one exists."""
    from governance.errors import UsageError
    from governance.private_files import FILE_MODE, UMASK_MODE, make_private_dir, write_atomic

    for path in files:
        if path.exists() or path.is_symlink():
            raise UsageError(f"{path} already exists; fedgov never overwrites key material: move it away or choose "
                             "another --out")
    for path, (data, private) in files.items():
        try:
            make_private_dir(path.parent)
        except OSError as err:
            raise UsageError(f"cannot create {path.parent}: {err.strerror}") from None
        write_atomic(path, data, mode=FILE_MODE if private else UMASK_MODE)
        typer.echo(f"wrote {path}{' (0600)' if private else ''}")


@app.command("ca")
def ca(out: OutOpt, days: DaysOpt = 3650,
       name: Annotated[str, typer.Option("--name", help="The CA's common name.")] = "fedgov federation CA") -> None:
    """Make a private CA: ca.crt (give it to every node) and ca.key (keep it apart; only issuing needs it)."""
    from deploy.certs import make_ca
    from governance.names import check_name

    issued = make_ca(check_name(name, "--name"), days)
    _write_new({out / "ca.crt": (issued.cert_pem, False), out / "ca.key": (issued.key_pem, True)})


@app.command("coordinator")
def coordinator(
    out: OutOpt,
    ca_dir: Annotated[Path, typer.Option("--ca", help="Directory holding ca.crt and ca.key (from `fedgov certs ca`).")],
    host: Annotated[Optional[list[str]], typer.Option("--host", help="A name or address nodes reach the coordinator "
                                                      "by (repeatable); loopback is always included.")] = None,
    days: DaysOpt = 825,
) -> None:
    """Issue the coordinator's TLS certificate: coordinator.crt, coordinator.key, and a copy of ca.crt."""
    from deploy.certs import Issued, issue_coordinator
    from governance.errors import UsageError

    try:
        ca = Issued((ca_dir / "ca.key").read_bytes(), (ca_dir / "ca.crt").read_bytes())
    except OSError as err:
        raise UsageError(f"cannot read the CA in {ca_dir} ({err.strerror}: {err.filename}); make it with "
                         "`fedgov certs ca --out DIR`") from None
    issued = issue_coordinator(ca, list(host or []), days)
    _write_new({out / "coordinator.crt": (issued.cert_pem, False), out / "coordinator.key": (issued.key_pem, True),
                **({} if (out / "ca.crt").resolve() == (ca_dir / "ca.crt").resolve() else
                   {out / "ca.crt": (ca.cert_pem, False)})})


@app.command("node")
def node(name: Annotated[str, typer.Argument(help="The node's fedgov id, e.g. radiology.")], out: OutOpt) -> None:
    """Make a node's SuperNode authentication key pair: NAME.auth (0600) and NAME.auth.pub (to register)."""
    import re

    from deploy.certs import node_auth_keys
    from governance.errors import UsageError

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise UsageError(f"node name {name[:80]!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a "
                         "letter or digit (it names the key files)")
    private, public = node_auth_keys()
    _write_new({out / f"{name}.auth": (private, True), out / f"{name}.auth.pub": (public, False)})
