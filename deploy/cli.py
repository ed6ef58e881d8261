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


def _refuse_existing(paths) -> None:
    from governance.errors import UsageError

    for path in paths:
        if path.exists() or path.is_symlink():
            raise UsageError(f"{path} already exists; fedgov never overwrites key material: move it away or choose "
                             "another --out")


def _write_new(files: dict[Path, tuple[bytes, bool]]) -> None:
    """Write each file (private ones 0600, the rest as the umask says); refuse before writing any if one exists."""
    from governance.errors import UsageError
    from governance.private_files import FILE_MODE, UMASK_MODE, make_private_dir, write_atomic

    _refuse_existing(files)
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
    from deploy.certs import node_auth_keys
    from deploy.node_files import check_node_id

    check_node_id(name, "node name", " (it names the key files)")
    private, public = node_auth_keys()
    _write_new({out / f"{name}.auth": (private, True), out / f"{name}.auth.pub": (public, False)})


node_app = typer.Typer(help="A team node: make its keys and policy (on the node), register it (at the coordinator).",
                       no_args_is_help=True)


@node_app.command("init")
def node_init(
    node_id: Annotated[str, typer.Argument(help="The node's fedgov id, e.g. radiology (it is also its Flower name).")],
    out: OutOpt,
) -> None:
    """Make a node's directory on its own machine: keys, a policy that refuses every run until filled in,
    and registration.json (public keys only) for the coordinator."""
    from deploy.certs import node_auth_keys
    from deploy.node_files import POLICY_TEMPLATE, Registration, check_node_id
    from governance.identity import NodeKey

    check_node_id(node_id)
    key_path = out / "node.key"
    private, public = node_auth_keys()
    files = {out / f"{node_id}.auth": (private, True), out / f"{node_id}.auth.pub": (public, False),
             out / "policy.toml": (POLICY_TEMPLATE.format(node_id=node_id).encode(), False)}
    _refuse_existing([key_path, *files, out / "registration.json"])  # before the signing key is made
    signing = NodeKey.load_or_create(key_path)
    typer.echo(f"wrote {key_path} (0600)")
    registration = Registration(node_id, signing.public_bytes(), public.decode().strip())
    _write_new({**files, out / "registration.json": (registration.to_json(), False)})
    typer.echo(f"give {out / 'registration.json'} to the coordinator's operator, who runs `fedgov node register`")


@node_app.command("register")
def node_register(
    registration_file: Annotated[Path, typer.Argument(help="The node's registration.json (from `fedgov node init`).")],
    team: Annotated[str, typer.Option("--team", help="The team the node belongs to, as recorded in the ledger.")],
    superlink: Annotated[Optional[str], typer.Option("--superlink", help="The SuperLink's loopback address (Control "
                                                     "API); default: the coordinator running on this workspace.")] = None,
    ca: Annotated[Optional[Path], typer.Option("--ca", help="The federation's CA certificate (ca.crt); default: the "
                                               "one of the coordinator running on this workspace.")] = None,
    workspace: Annotated[Optional[Path], typer.Option("--workspace", "-w", help="Workspace directory.")] = None,
    passphrase_file: Annotated[Optional[Path], typer.Option("--passphrase-file", help="File holding the keystore "
                                                            "passphrase (default: $FEDGOV_PASSPHRASE).")] = None,
    actor: Annotated[Optional[str], typer.Option("--actor", help="Who registers (recorded); default: the login "
                                                 "name.")] = None,
) -> None:
    """Register a node with Flower's SuperLink and in fedgov's ledger, both or neither."""
    import getpass

    from deploy.node_files import MAX_REGISTRATION_BYTES, Registration
    from deploy.registration import register
    from governance.cli.options import open_writer
    from governance.errors import UsageError
    from governance.names import check_name

    check_name(team, "--team")
    try:
        with open(registration_file, "rb") as f:
            data = f.read(MAX_REGISTRATION_BYTES + 1)
    except OSError as err:
        raise UsageError(f"cannot read {registration_file}: {err.strerror}") from None
    registration = Registration.from_json(data, str(registration_file))
    if superlink is None or ca is None:
        from deploy.coordinator import running_coordinator
        from governance.workspace import Workspace

        running = running_coordinator(Workspace.locate(workspace).path / "coordinator")
        superlink, ca = superlink or running.link, ca or running.ca
    with open_writer(workspace, passphrase_file) as ledger:
        flower_id = register(ledger, registration, team, superlink, ca, actor=check_name(actor or getpass.getuser(),
                                                                                          "--actor"))
    typer.echo(f"registered node {registration.node_id} (team {team}): Flower node id {flower_id}, signing key "
               f"recorded in the ledger")


app_app = typer.Typer(help="fedgov's app bundle: what a coordinator sends and a site approves.", no_args_is_help=True)


@app_app.command("hash")
def app_hash() -> None:
    """Print the SHA-256 of fedgov's app bundle as Flower builds it: a site lists it in its policy's app_hashes."""
    from deploy.app_bundle import bundle_sha256

    typer.echo(bundle_sha256())


@app_app.callback()
def app_group() -> None:
    """fedgov's app bundle."""


def run_command(
    purpose: Annotated[str, typer.Option("--purpose", help="The purpose the run declares; only nodes with valid "
                                          "consent for it train, and only sites whose policy allows it take part.")],
    superlink: Annotated[Optional[str], typer.Option("--superlink", help="The SuperLink's loopback address (its "
                                                     "Control API), as `fedgov server start` printed it (default: "
                                                     "the coordinator running on this workspace).")] = None,
    ca: Annotated[Optional[Path], typer.Option("--ca", help="The federation's CA certificate (default: the one of "
                                               "the coordinator running on this workspace).")] = None,
    nodes: Annotated[int, typer.Option("--nodes", help="Nodes the run waits for and expects (num-partitions).")] = 2,
    rounds: Annotated[int, typer.Option("--rounds", help="Federated rounds.")] = 3,
    strategy: Annotated[str, typer.Option("--strategy", help="Flower strategy (see `fedgov sim run --help`).")] =
    "fedavg",
    dataset: Annotated[str, typer.Option("--dataset", help="The model the run trains, named for its bundled dataset "
                                         "(breast-cancer or digits); every node's data must fit it.")] =
    "breast-cancer",
    workspace: Annotated[Optional[Path], typer.Option("--workspace", "-w", help="The coordinator's workspace "
                                                      "(default: $FEDGOV_HOME, else the nearest .fedgov).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Run directory on the coordinator (rounds.json, "
                                                "model).")] = None,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for --nodes nodes to be online.")] = 120.0,
    allow_failed_rounds: Annotated[bool, typer.Option("--allow-failed-rounds", help="Exit 0 even if a round built "
                                                      "no model (each failure is in the ledger either way).")] = False,
    retrain_trigger: Annotated[str, typer.Option("--retrain-trigger", help="This run retrains on the decision of "
                                                 "monitor.trigger entry SEQ (set by `fedgov monitor watch`).")] = "",
    dp: Annotated[str, typer.Option("--dp", help="Differential privacy: none, server-fixed or client-fixed "
                                    "(docs/privacy.md).")] = "none",
    dp_noise_multiplier: Annotated[float, typer.Option("--dp-noise-multiplier", help="Gaussian noise multiplier "
                                                       "sigma.")] = 1.0,
    dp_clipping_norm: Annotated[float, typer.Option("--dp-clipping-norm", help="Clipping norm C.")] = 1.0,
    dp_delta: Annotated[float, typer.Option("--dp-delta", help="Delta of each node's epsilon.")] = 1e-5,
    privacy_max_epsilon: Annotated[float, typer.Option("--privacy-max-epsilon", help="Every node's epsilon cap "
                                                       "(0: none).")] = 0.0,
    privacy_budgets: Annotated[str, typer.Option("--privacy-budgets", help="Per-node caps, NODE:EPSILON,...")] = "",
    secagg: Annotated[bool, typer.Option("--secagg", help="Secure aggregation: rounds run Flower's SecAgg+; the "
                                         "coordinator sees only the sum (docs/secure-aggregation.md).")] = False,
) -> None:
    """Launch a governed run on the deployment, stream its rounds, and exit non-zero unless it completed."""
    import getpass

    from fedgov.settings import RunSettings
    from governance.errors import PolicyError
    from governance.workspace import Workspace

    ws = Workspace.discover(workspace)
    overrides = {"purpose": purpose, "num-server-rounds": rounds, "strategy": strategy, "dataset": dataset,
                 "num-partitions": nodes, "allow-failed-rounds": allow_failed_rounds,
                 "workspace": str(ws.path.resolve()), "operator": getpass.getuser(),
                 "out-dir": str(out.resolve()) if out else "", "retrain-trigger": retrain_trigger, "dp": dp,
                 "dp-noise-multiplier": dp_noise_multiplier, "dp-clipping-norm": dp_clipping_norm, "dp-delta": dp_delta,
                 "privacy-max-epsilon": privacy_max_epsilon, "privacy-budgets": privacy_budgets, "secagg": secagg}
    settings = RunSettings.from_run_config(overrides)  # every setting checked here, in one line, before anything starts
    if settings.governance.retrain_trigger:
        from fedgov.settings import parse_retrain_trigger
        from governance.monitoring.link import check_before_run

        check_before_run(ws, parse_retrain_trigger(settings.governance.retrain_trigger) or 0)
    if superlink is None or ca is None:
        from deploy.coordinator import running_coordinator

        running = running_coordinator(ws.path / "coordinator")
        superlink, ca = superlink or running.link, ca or running.ca
    # The first sign of life, before the slow parts (Flower builds the bundle from the app's whole directory).
    typer.echo(f"preparing a run of {rounds} rounds on {nodes} nodes: building the app bundle, then waiting up to "
               f"{wait:g} s for the nodes at the coordinator {superlink}…")
    from deploy.app_bundle import build_bundle  # Flower's client stack: imported after the first line
    from deploy.gatekeeper import bundle_hash
    from deploy.launch import follow, start, stop, wait_for_nodes
    from deploy.registration import control_client, flower_call

    bundle = build_bundle()
    with control_client(superlink, ca) as client:
        online = flower_call("list the nodes", lambda: wait_for_nodes(client, nodes, wait))
        typer.echo(f"{len(online)} nodes online: {', '.join(online)}")
        digest = bundle_hash(bundle)
        run_id = flower_call("start the run", lambda: start(client, bundle, digest, overrides))
        typer.echo(f"run {run_id} started (app bundle {digest[:16]}…)")
        try:
            outcome = flower_call("follow the run", lambda: follow(client, run_id, typer.echo))
        except KeyboardInterrupt:
            flower_call("stop the run", lambda: stop(client, run_id))
            raise
    if not outcome.completed:
        raise PolicyError(f"run {run_id} {outcome.sub_status or outcome.status}: {outcome.details or 'no details'}")
    typer.echo(f"run {run_id} completed")

server_app = typer.Typer(help="Run the coordinator: Flower's SuperLink on loopback, fedgov's gatekeeper that starts "
                              "only approved ServerApps, and a TLS front that exposes only the Fleet API to nodes.",
                         no_args_is_help=True)


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
    approve_app: Annotated[Optional[list[str]], typer.Option(
        "--approve-app", metavar="SHA256",
        help="Also run ServerApps of the app bundle with this SHA-256, with the ledger credentials (repeatable). "
             "fedgov's own bundle, as built here, is always approved; a run of any other bundle ends failed.")] = None,
    passphrase_file: Annotated[Optional[Path], typer.Option(
        "--passphrase-file", help="File holding the ledger's passphrase, which only the ServerApps of approved runs "
                                  "get (default: $FEDGOV_PASSPHRASE, or $FEDGOV_KEK and $FEDGOV_SIGNING_KEY).")] = None,
) -> None:
    """Start the coordinator in the foreground; Ctrl-C or SIGTERM stops everything it started."""
    from deploy.certs import check_coordinator_files
    from deploy.coordinator import Coordinator, check_link_port, parse_listen, serve
    import os

    from deploy.coordinator_gate import check_hash
    from fedgov.interrupts import exit_code, signal_name
    from governance.errors import UsageError
    from governance.keystore import ENV_PASSPHRASE, passphrase_from
    from governance.workspace import Workspace

    if passphrase_file is not None:
        passphrase = passphrase_from(passphrase_file)
        if not passphrase:
            raise UsageError(f"--passphrase-file {passphrase_file} is empty; it holds the ledger's passphrase")
        os.environ[ENV_PASSPHRASE] = passphrase  # handed to the gatekeeper like the variable (never to Flower)
    if certs is None:
        raise UsageError("--certs DIR is required: fedgov server start has no insecure mode (make the coordinator's "
                         "TLS files with `fedgov certs coordinator --ca CA_DIR --out DIR`)")
    try:
        approve = tuple(dict.fromkeys(check_hash(text) for text in approve_app or ()))
    except ValueError as err:
        raise UsageError(f"--approve-app {err}") from None
    coordinator = Coordinator(
        certs=check_coordinator_files(certs.expanduser().resolve()), listen=parse_listen(listen),
        link_port=check_link_port(link_port),
        state=(state_dir.expanduser().resolve() if state_dir else Workspace.locate(workspace).path / "coordinator"),
        approve=approve, workspace=Workspace.locate(workspace).path)
    try:
        serve(coordinator, say=lambda line: typer.echo(line))
    except KeyboardInterrupt as interrupt:
        typer.echo(f"coordinator stopped by {signal_name(interrupt)}; every process it started has ended")
        raise typer.Exit(exit_code(interrupt)) from None


@node_app.command("join")
def node_join(
    node_dir: Annotated[Path, typer.Option("--dir", help="The node directory `fedgov node init` made.")],
    superlink: Annotated[str, typer.Option("--superlink", help="The coordinator's node address, HOST:PORT, as "
                                           "`fedgov server start` printed it.")],
    ca: Annotated[Path, typer.Option("--ca", help="The federation's CA certificate (ca.crt).")],
    runtime_port: Annotated[int, typer.Option("--runtime-port", help="Loopback port for the SuperNode's Runtime "
                                              "API, which only the gatekeeper uses.")] = 9094,
) -> None:
    """Join the federation: Flower's SuperNode (TLS, node authentication, process isolation) and fedgov's
    gatekeeper, which runs only what this site's policy allows. Runs until Ctrl-C or SIGTERM."""
    from deploy.node_join import NodeDir, join

    if not 1024 <= runtime_port <= 65535:
        from governance.errors import UsageError

        raise UsageError(f"--runtime-port must be between 1024 and 65535, got {runtime_port}")
    from fedgov.interrupts import exit_code, signal_name

    node = NodeDir.open(node_dir)
    try:
        join(node, superlink, ca, runtime_port, typer.echo)
    except KeyboardInterrupt as interrupt:  # stopping a node is normal: a plain line, and 130 or 143
        typer.echo(f"node {node.node_id} stopped by {signal_name(interrupt)}; its SuperNode and gatekeeper have ended")
        raise typer.Exit(exit_code(interrupt)) from None
