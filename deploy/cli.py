"""`fedgov certs`: make the federation's TLS material (see deploy/certs.py for what each file is)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from deploy.coordinator import DEFAULT_LINK_PORT, DEFAULT_LISTEN

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


server_app = typer.Typer(help="Run the coordinator: Flower's SuperLink and SuperExec on loopback, and a TLS front "
                              "that exposes only the Fleet API to nodes.", no_args_is_help=True)


@server_app.command("start")
def server_start(
    certs: Annotated[Optional[Path], typer.Option(
        "--certs", help="Directory with ca.crt, coordinator.crt and coordinator.key (from `fedgov certs "
                        "coordinator`). Required: there is no insecure mode.")] = None,
    listen: Annotated[str, typer.Option(
        "--listen", help="IP:PORT where nodes reach the Fleet API (TLS). 0.0.0.0 is every IPv4 address of this "
                         "host; [::] every IPv6 one.")] = DEFAULT_LISTEN,
    link_port: Annotated[int, typer.Option(
        "--link-port", help="Port of the SuperLink on 127.0.0.1 (Control, Runtime and Fleet API; TLS), for the "
                            "fedgov commands on this host.")] = DEFAULT_LINK_PORT,
    workspace: Annotated[Optional[Path], typer.Option(
        "--workspace", help="fedgov workspace; the coordinator's state goes in its coordinator/ directory (default: "
                            "$FEDGOV_HOME, else the nearest .fedgov).")] = None,
    state_dir: Annotated[Optional[Path], typer.Option(
        "--state-dir", help="Keep the coordinator's state (Flower's database, FLWR_HOME, logs) here instead.")] = None,
) -> None:
    """Start the coordinator in the foreground; Ctrl-C or SIGTERM stops everything it started."""
    from deploy.certs import check_coordinator_files
    from deploy.coordinator import Coordinator, check_link_port, parse_listen, serve
    from fedgov.interrupts import exit_code, signal_name
    from governance.errors import UsageError
    from governance.workspace import Workspace

    if certs is None:
        raise UsageError("--certs DIR is required: fedgov server start has no insecure mode (make the coordinator's "
                         "TLS files with `fedgov certs coordinator --ca CA_DIR --out DIR`)")
    coordinator = Coordinator(
        certs=check_coordinator_files(certs.expanduser().resolve()), listen=parse_listen(listen),
        link_port=check_link_port(link_port),
        state=(state_dir.expanduser().resolve() if state_dir else Workspace.locate(workspace).path / "coordinator"))
    try:
        serve(coordinator, say=lambda line: typer.echo(line))
    except KeyboardInterrupt as interrupt:
        typer.echo(f"coordinator stopped by {signal_name(interrupt)}; every process it started has ended")
        raise typer.Exit(exit_code(interrupt)) from None
