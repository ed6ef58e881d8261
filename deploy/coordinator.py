"""`fedgov server start`: the coordinator, in the foreground, until Ctrl-C or SIGTERM.

It starts, as one guarded process tree (`fedgov.processes.guarded`, as `fedgov sim run` does):

1. `flower-superlink` on 127.0.0.1 only, with TLS (the coordinator's certificate), SuperNode
   authentication, a persistent state database, runtime dependency installation off, and
   `--isolation process` with a SuperExec secret: the Runtime API, which would otherwise hand
   a ServerApp's task token to any caller, answers only requests signed with that secret.
2. fedgov's gatekeeper (`deploy/coordinator_gate.py`) in place of Flower's `flower-superexec`,
   with the same secret (a fresh random file, 0600, each start): it starts Flower's
   `flwr-serverapp` only for a run of an approved app bundle (fedgov's own, as built on this
   host, and any `--approve-app` hash), and only that process gets the ledger's credentials;
   any other run ends failed with the reason. The credentials reach the gatekeeper over a pipe.
3. The Fleet proxy (`deploy/fleet_proxy.py`), in this process, on `--listen`: the only port
   nodes reach. It forwards the Fleet API and answers 404 to the rest.

There is no insecure mode: TLS is always on, so nothing listens without it on any address.
The children get `FLWR_TELEMETRY_ENABLED=0`, `FLWR_DISABLE_UPDATE_CHECK=1`, their own
`FLWR_HOME` in the state directory, no other `FLWR_*` setting of the caller (one of them
would start Flower's legacy gRPC Control API on every address), and none of fedgov's
secrets in their environment. They are started from the main thread with a parent-death
signal, so even `kill -9` of this process stops them.

Bad input (missing or mismatched certificates, a busy port, another coordinator on the same
state, fedgov's own app bundle that cannot be built) is one line before anything starts. If a
child dies, the others are stopped and the command exits 1 naming it. Ctrl-C or SIGTERM stops
everything, exit 130 or 143.
"""

from __future__ import annotations

import errno
import fcntl
import http.client
import ipaddress
import json
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from deploy.fleet_proxy import FleetProxy, Upstream, server_context
from fedgov.coordinator_keys import hand_over, split_secrets
from fedgov.interrupts import ignore_further
from fedgov.processes import TAG_VARIABLE, guarded, parent_death_signal
from governance.errors import FedgovError, UsageError

if TYPE_CHECKING:  # not at run time: deploy.certs imports `cryptography`, which `fedgov --help` need not load
    from deploy.certs import CoordinatorFiles

# Flower's own conventional ports: 9092 was the Fleet API's, 9093 the Control API's
# (flwr.common.constant), so a node operator's `--superlink HOST:9092` reads as in Flower's docs.
DEFAULT_LISTEN = "0.0.0.0:9092"
DEFAULT_LINK_PORT = 9093
HEALTH_TIMEOUT = 90.0  # the SuperLink imports FastAPI, SQLAlchemy and Flower first: seconds on a busy machine
GRACE = 5.0  # SIGTERM, then SIGKILL: time for the SuperLink to close its database
INFO_FILE = "coordinator.json"


class ComponentDied(FedgovError):
    """A process of the coordinator ended on its own; everything else was stopped."""

    exit_code = 1


def parse_listen(text: str) -> tuple[str, int]:
    """`IP:PORT` or `[IPv6]:PORT` (`localhost` means 127.0.0.1); one line for anything else."""
    host, _, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    host = "127.0.0.1" if host == "localhost" else host
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is None or not re.fullmatch(r"[0-9]{1,5}", port) or not 0 < int(port) < 65536 or \
            (ip.version == 6 and not text.startswith("[")):
        raise UsageError(f"--listen {text[:80]!r} is not IP:PORT (e.g. 0.0.0.0:9092, 10.0.0.5:9092, [::]:9092)")
    return str(ip), int(port)


def check_link_port(port: int) -> int:
    if not 0 < port < 65536:
        raise UsageError(f"--link-port must be between 1 and 65535, got {port}")
    return port


@dataclass(frozen=True)
class Coordinator:
    """Where everything of one coordinator is: its TLS files, its ports, its state directory."""

    certs: CoordinatorFiles
    listen: tuple[str, int]
    link_port: int
    state: Path
    approve: tuple[str, ...] = ()  # app bundle hashes approved besides fedgov's own (--approve-app)
    workspace: Path | None = None  # the fedgov workspace whose ledger the ServerApps write: the only one allowed

    @property
    def database(self) -> Path:
        return self.state / "state.db"

    @property
    def secret_file(self) -> Path:
        return self.state / "superexec.secret"

    @property
    def flwr_home(self) -> Path:
        return self.state / "flwr-home"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def link(self) -> str:
        return f"127.0.0.1:{self.link_port}"

    @property
    def fleet(self) -> str:
        host, port = self.listen
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def superlink_command(self, bin_dir: Path) -> list[str]:
        return [str(bin_dir / "flower-superlink"),
                "--ssl-ca-certfile", str(self.certs.ca), "--ssl-certfile", str(self.certs.cert),
                "--ssl-keyfile", str(self.certs.key),
                "--host", "127.0.0.1", "--port", str(self.link_port),
                "--database", str(self.database), "--enable-supernode-auth",
                "--disable-runtime-dependency-installation",
                "--isolation", "process", "--superexec-auth-secret-file", str(self.secret_file)]

    @property
    def serverapps(self) -> Path:
        return self.state / "serverapps"

    def gatekeeper_command(self) -> list[str]:
        """fedgov's gatekeeper in place of `flower-superexec` (deploy/coordinator_gate.py)."""
        return [sys.executable, "-P", "-m", "deploy.coordinator_gate",
                "--runtime-api-address", self.link, "--root-certificates", str(self.certs.ca),
                "--superexec-auth-secret-file", str(self.secret_file), "--work-dir", str(self.serverapps),
                "--approve-own-bundle", *[arg for digest in self.approve for arg in ("--approve", digest)],
                *(["--workspace", str(self.workspace)] if self.workspace is not None else [])]


def flower_bin_dir() -> Path:
    """The directory of this Python's console scripts, where pip put Flower's (not resolved: a venv's python is a link)."""
    bin_dir = Path(sys.executable).parent
    for name in ("flower-superlink", "flwr-serverapp"):
        if not os.access(bin_dir / name, os.X_OK):
            raise UsageError(f"{name} is not in {bin_dir}; install fedgov with its Flower (flwr==1.42.0) into this "
                             "environment")
    return bin_dir


def child_environment(coordinator: Coordinator, bin_dir: Path) -> dict[str, str]:
    env, _ = split_secrets(os.environ)
    env = {key: value for key, value in env.items() if not key.startswith("FLWR_")}
    env.update(FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1", FLWR_HOME=str(coordinator.flwr_home),
               PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}")
    env[TAG_VARIABLE] = f"coordinator-{os.getpid()}"  # everything it starts inherits it: the clean-up finds it all
    return env


def serve(coordinator: Coordinator, say: Callable[[str], None] = print) -> None:
    """Run the coordinator until a signal (KeyboardInterrupt propagates once all is stopped) or a child's death."""
    bin_dir = flower_bin_dir()
    try:
        tls = server_context(coordinator.certs.cert, coordinator.certs.key)
        upstream = Upstream.loopback(coordinator.link_port, coordinator.certs.ca)
    except (ssl.SSLError, OSError) as err:
        raise UsageError(f"the coordinator's TLS files in {coordinator.certs.cert.parent} cannot be used: {err}") \
            from None
    _prepare(coordinator.state)
    with _StateLock(coordinator.state):
        proxy = _bind_proxy(coordinator, tls, upstream)
        try:
            _check_free(coordinator)
            _write_secret(coordinator.secret_file)
            env = child_environment(coordinator, bin_dir)
            with guarded(env, GRACE) as started:
                try:
                    _run(coordinator, bin_dir, env, proxy, upstream, started, say)
                except KeyboardInterrupt:
                    ignore_further()
                    raise
                finally:
                    proxy.stop()  # first: nodes see a closed port, not a proxy without its SuperLink
        finally:
            proxy.stop()
            (coordinator.state / INFO_FILE).unlink(missing_ok=True)
            coordinator.secret_file.unlink(missing_ok=True)  # each start makes a new one


def _prepare(state: Path) -> None:
    from governance.private_files import make_private_dir

    try:
        for directory in [*reversed([d for d in state.parents if not d.exists()]), state, state / "logs",
                          state / "flwr-home"]:
            make_private_dir(directory)  # every directory made here is 0700
    except OSError as err:
        raise UsageError(f"cannot create the coordinator's state directory {state}: {err.strerror}") from None


class _StateLock:
    """One coordinator per state directory: two SuperLinks on one database would corrupt it."""

    def __init__(self, state: Path) -> None:
        self.path = state / "coordinator.lock"
        self.fd = -1

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise UsageError(f"another `fedgov server start` is running on {self.path.parent}; stop it first, or "
                             "give this one its own --state-dir") from None

    def __exit__(self, *_exc: object) -> None:
        os.close(self.fd)


def _bind_proxy(coordinator: Coordinator, tls: ssl.SSLContext, upstream: Upstream) -> FleetProxy:
    if coordinator.listen[1] == coordinator.link_port:
        raise UsageError(f"--listen {coordinator.fleet} and --link-port {coordinator.link_port} must be different "
                         "ports")
    try:
        return FleetProxy(coordinator.listen, tls, upstream, key_registered=partial(key_registered, coordinator.link,
                                                                                  coordinator.certs.ca))
    except OSError as err:
        raise UsageError(f"cannot listen on --listen {coordinator.fleet}: {_why(err)}") from None


def key_registered(link: str, ca: Path, public_key: bytes) -> bool | None:
    """Whether the SuperLink at `link` holds this auth key (PEM, as the SuperNode sends it) for a node not
    unregistered, asked through its Control API; None if it cannot be asked. Exact bytes, as the SuperLink's
    own lookup compares them."""
    import httpx
    from flwr.proto.control_pb2 import ListNodesRequest

    from deploy.registration import control_client

    try:
        with control_client(link, ca) as client:
            nodes = client.ListNodes(ListNodesRequest()).nodes_info
    except (httpx.HTTPError, ValueError, FedgovError):  # ValueError: a reply that is no protobuf
        return None
    return any(node.public_key == public_key and node.status != "unregistered" for node in nodes)


def _check_free(coordinator: Coordinator) -> None:
    """The SuperLink's port, tried the way uvicorn binds it; a race after this is a SuperLink that dies, named."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", coordinator.link_port))
    except OSError as err:
        raise UsageError(f"cannot start the SuperLink on --link-port {coordinator.link_port}: {_why(err)}") from None
    finally:
        probe.close()


def _why(err: OSError) -> str:
    if err.errno == errno.EADDRINUSE:
        return "the port is in use; stop what uses it or choose another"
    if err.errno == errno.EADDRNOTAVAIL:
        return "that is not an address of this host"
    if err.errno == errno.EACCES:
        return "ports below 1024 need privileges; choose a port from 1024"
    return err.strerror or str(err)


def _write_secret(path: Path) -> None:
    from governance.private_files import write_atomic

    write_atomic(path, secrets.token_hex(32).encode("ascii"))  # 0600; read by Flower as raw bytes


def _run(coordinator: Coordinator, bin_dir: Path, env: dict[str, str], proxy: FleetProxy, upstream: Upstream,
         started: list[subprocess.Popen], say: Callable[[str], None]) -> None:
    children: list[tuple[str, subprocess.Popen, Path]] = []

    def start(name: str, command: list[str], child_env: dict[str, str] = env,
              pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
        log = coordinator.logs / f"{name.removeprefix('flower-')}.log"
        with os.fdopen(os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as out:
            # umask 077: Flower's database, its FLWR_HOME and the apps it unpacks are this user's alone
            try:
                child = subprocess.Popen(command, env=child_env, cwd=coordinator.state, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True, umask=0o077,
                                         preexec_fn=parent_death_signal(), pass_fds=pass_fds)
            finally:
                for fd in pass_fds:  # the child holds its own copy now
                    os.close(fd)
        started.append(child)
        children.append((name, child, log))
        return child

    superlink = start("flower-superlink", coordinator.superlink_command(bin_dir))
    # The ServerApp writes the run to the ledger, so it needs the ledger's credentials. They go to the
    # gatekeeper over a pipe, and from it only to the ServerApp of an approved app bundle; the SuperLink
    # never gets them (docs/security.md, threat 11). Started now, it builds fedgov's own bundle to hash it
    # while the SuperLink starts, and waits for the SuperLink's Runtime API by itself.
    gate_env, ledger_secrets = dict(env), split_secrets(os.environ)[1]
    gatekeeper = start("gatekeeper", coordinator.gatekeeper_command(), gate_env,
                       (hand_over(ledger_secrets, gate_env),))
    _wait_healthy(upstream, lambda: _check_children(children))
    say(f"superlink: https://{coordinator.link} (loopback only: Control, Runtime and Fleet API), pid {superlink.pid}, "
        f"state {coordinator.database}")
    if not ledger_secrets:
        say("gatekeeper: no FEDGOV_PASSPHRASE (or FEDGOV_KEK and FEDGOV_SIGNING_KEY) was given, so a governed run's "
            "ServerApp cannot open the ledger; restart with it set")
    extra = f" and {len(coordinator.approve)} more by --approve-app" if coordinator.approve else ""
    say(f"gatekeeper: starts a ServerApp only for an approved app bundle (fedgov's own{extra}), and gives only it the "
        f"ledger credentials; signs to the Runtime API with {coordinator.secret_file.name}, pid {gatekeeper.pid}")
    proxy.start()
    say(f"fleet:     https://{coordinator.fleet} (the Fleet API only, for nodes), in this process, pid {os.getpid()}")
    _write_info(coordinator)
    say(f"coordinator up; logs in {coordinator.logs}; stop it with Ctrl-C or SIGTERM")
    while True:
        _check_children(children)
        if not proxy.running:
            raise ComponentDied("the Fleet proxy stopped; the coordinator stopped everything it started")
        time.sleep(0.5)


def _check_children(children: list[tuple[str, subprocess.Popen, Path]]) -> None:
    for name, child, log in children:
        code = child.poll()
        if code is not None:
            how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
            last = last_line(log)
            raise ComponentDied(f"{name} (pid {child.pid}) {how}; the coordinator stopped everything it started; its "
                                f"log: {log}" + (f" (last line: {last})" if last else ""))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def last_line(log: Path, limit: int = 200) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
            lines = [line for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return re.sub(r"\x1b\[[0-9;]*m", "", lines[-1]).strip()[:limit] if lines else ""


def _wait_healthy(upstream: Upstream, check: Callable[[], None]) -> None:
    """Until the SuperLink's /health answers 200 over TLS, checked against the CA; `check` raises if a child died."""
    deadline = time.monotonic() + HEALTH_TIMEOUT
    while True:
        check()
        try:
            if health(upstream):
                return
        except ssl.SSLCertVerificationError as err:
            raise ComponentDied(f"the SuperLink's TLS certificate does not verify against the CA ({err.verify_message})"
                                "; the coordinator stopped everything it started") from None
        if time.monotonic() > deadline:
            raise ComponentDied(f"flower-superlink did not answer https://{upstream.host}:{upstream.port}/health within "
                                f"{HEALTH_TIMEOUT:g} s; the coordinator stopped everything it started")
        time.sleep(0.25)


def health(upstream: Upstream, timeout: float = 2.0) -> bool:
    """Whether the SuperLink answers `GET /health` with 200 (False while it is not listening yet)."""
    connection = http.client.HTTPSConnection(upstream.host, upstream.port, timeout=timeout, context=upstream.context)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except ssl.SSLCertVerificationError:
        raise
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _write_info(coordinator: Coordinator) -> None:
    """For the commands that talk to this coordinator (`fedgov node register`, `fedgov run`): where it is."""
    from governance.private_files import write_atomic

    info = {"pid": os.getpid(), "superlink": coordinator.link, "fleet": coordinator.fleet,
            "ca": str(coordinator.certs.ca), "database": str(coordinator.database)}
    write_atomic(coordinator.state / INFO_FILE, (json.dumps(info, indent=2) + "\n").encode("utf-8"))


@dataclass(frozen=True)
class Running:
    """Where the coordinator started on a state directory listens, as its coordinator.json says."""

    link: str
    ca: Path


def running_coordinator(state: Path) -> Running:
    """The coordinator `fedgov server start` runs on `state` now; UsageError when none does."""
    from governance.errors import UsageError

    try:
        info = json.loads((state / INFO_FILE).read_bytes())
        pid, link, ca = int(info["pid"]), str(info["superlink"]), Path(info["ca"])
    except (OSError, ValueError, KeyError, TypeError):
        info = None
    if info is None or not _alive(pid):
        raise UsageError(f"no coordinator is running on {state}; give --superlink and --ca, or start it with `fedgov "
                         "server start` (or `fedgov federation up`)")
    return Running(link, ca)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
