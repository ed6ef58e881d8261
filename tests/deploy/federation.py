"""A loopback federation for the deployment tests, set up with the commands a person types.

`fedgov audit init`, `fedgov server start`, and per node `fedgov node init`, its site file (an approved
`fedgov app hash`, its purposes, 40 own rows of breast-cancer), `fedgov node register`, `fedgov consent
grant` and `fedgov node join`. A node may instead be started as a bare `flower-supernode` with its auth key
(no gatekeeper, no fedgov node config), as someone who skips `fedgov node join` would. Every process carries
the federation's own mark; on leaving, each gets SIGTERM and must exit 143 (a bare SuperNode: 0), and no
marked process may be left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import processes_marked
from tests.deploy.superlink import free_port
from tests.deploy.test_node_join import site_file
from tests.deploy.test_server_start import make_certs
from tests.fedgov_command import MARK_VARIABLE, fedgov_argv, fedgov_env, run_fedgov

PURPOSE = "triage model"
BIN = Path(sys.executable).parent


@dataclass
class Federation:
    root: Path
    mark: str
    link: int  # the SuperLink's loopback port (Control API): what `fedgov run` and `node register` use
    fleet: int  # the Fleet proxy's port: what nodes join
    joins: dict[str, subprocess.Popen] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)  # fedgov commands: exit 143 on SIGTERM
    bare: dict[str, subprocess.Popen] = field(default_factory=dict)  # bare flower-supernodes: exit 0 on SIGTERM
    ending: list[subprocess.Popen] = field(default_factory=list)  # expected to end by themselves; killed if not
    app_hash: str = ""

    def start_server(self) -> subprocess.Popen:
        """`fedgov server start` on this federation's ports and workspace; returns once it is up."""
        out = self.root / f"server-{len(self.processes)}.out"
        server = _background(["server", "start", "--certs", str(self.root / "coord"), "--listen",
                              f"127.0.0.1:{self.fleet}", "--link-port", str(self.link)], out, self.mark, self.root)
        self.processes.append(server)
        _wait_for(out, "coordinator up", server)
        return server

    @property
    def env(self) -> dict[str, str]:
        return {"FEDGOV_HOME": str(self.root / "ws")}

    @property
    def ca(self) -> Path:
        return self.root / "coord" / "ca.crt"

    def init_node(self, name: str, purposes: tuple[str, ...] = (PURPOSE,)) -> Path:
        """`fedgov node init NAME` and its site file: a node directory, not yet registered."""
        node = self.root / name
        assert run_fedgov("node", "init", name, "--out", str(node)).returncode == 0
        site_file(node, [self.app_hash], purposes)
        return node

    def register(self, name: str) -> None:
        """`fedgov node register` (Flower and the ledger) and consent for PURPOSE, as the operator does."""
        registered = run_fedgov("node", "register", str(self.root / name / "registration.json"), "--team", name,
                                "--superlink", f"127.0.0.1:{self.link}", "--ca", str(self.ca), env=self.env)
        assert registered.returncode == 0, registered.stderr
        granted = run_fedgov("consent", "grant", "--node", name, "--team", name, "--purpose", PURPOSE,
                             "--data-category", "imaging", "--notice-version", "1", "--notice-hash", "a" * 64,
                             env=self.env)
        assert granted.returncode == 0, granted.stderr

    def join_args(self, name: str) -> list[str]:
        return ["node", "join", "--dir", str(self.root / name), "--superlink", f"127.0.0.1:{self.fleet}", "--ca",
                str(self.ca), "--runtime-port", str(free_port())]

    def join(self, name: str) -> subprocess.Popen:
        """`fedgov node join` of the node directory NAME, in the background (output in NAME.out; its temporary
        files, such as the app its gatekeeper unpacks for a task, in NAME-tmp)."""
        (self.root / f"{name}-tmp").mkdir(exist_ok=True)
        return _background(self.join_args(name), self.root / f"{name}.out", self.mark, self.root,
                           {"TMPDIR": str(self.root / f"{name}-tmp")})

    def bare_supernode(self, name: str) -> subprocess.Popen:
        """A bare `flower-supernode` with node NAME's auth key: TLS to the Fleet port, Flower's default isolation
        (it runs the app it is sent itself), no fedgov node config, no gatekeeper (output in NAME.out)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEDGOV_")}  # no passphrase, no workspace
        env.update({MARK_VARIABLE: self.mark, "FLWR_HOME": str(self.root / name / "flwr-home"),
                    "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"})
        with open(self.root / f"{name}.out", "w") as sink:
            return subprocess.Popen([str(BIN / "flower-supernode"), "--root-certificates", str(self.ca), "--superlink",
                                     f"127.0.0.1:{self.fleet}", "--auth-supernode-private-key",
                                     str(self.root / name / f"{name}.auth"), "--port", str(free_port())],
                                    stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=self.root,
                                    start_new_session=True)  # with the SuperExec it starts: one group to stop

    def run_args(self, purpose: str, nodes: int, rounds: int) -> list[str]:
        return ["run", "--purpose", purpose, "--superlink", f"127.0.0.1:{self.link}", "--ca", str(self.ca), "--nodes",
                str(nodes), "--rounds", str(rounds)]


def _background(args: list[str], out: Path, mark: str, cwd: Path, env: Mapping[str, str] | None = None
                ) -> subprocess.Popen:
    with open(out, "w") as sink:
        return subprocess.Popen(fedgov_argv(*args), stdout=sink, stderr=subprocess.STDOUT,
                                env=fedgov_env({MARK_VARIABLE: mark, "FEDGOV_HOME": str(cwd / "ws"), **(env or {})}),
                                cwd=cwd)


def _wait_for(path: Path, text: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text() if path.exists() else ""):
        assert process.poll() is None and time.monotonic() < deadline, path.read_text()[-3000:]
        time.sleep(0.2)


@contextmanager
def loopback_federation(root: Path, nodes: Mapping[str, tuple[str, ...]], bare: tuple[str, ...] = (),
                        first: Callable[[Federation], None] | None = None) -> Iterator[Federation]:
    """A coordinator and one joined node per entry of `nodes` (name -> the purposes its own policy allows);
    each name in `bare` is registered and consents the same way, but runs as a bare `flower-supernode`.
    `first` is called once the coordinator is up, before any node is enrolled: what it starts runs while the
    nodes enroll (one command at a time, so a second core is mostly idle)."""
    federation = Federation(root, f"federation-{uuid.uuid4().hex}", free_port(), free_port())
    assert run_fedgov("audit", "init", env=federation.env).returncode == 0
    make_certs(root)
    processes = federation.processes
    try:
        federation.start_server()
        federation.app_hash = run_fedgov("app", "hash").stdout.strip()
        if first is not None:
            first(federation)
        for name in bare:  # first: they come online while the others enroll
            federation.init_node(name)
            federation.register(name)
            federation.bare[name] = federation.bare_supernode(name)
        for name, purposes in nodes.items():
            federation.init_node(name, purposes)
            federation.register(name)
            federation.joins[name] = federation.join(name)
            processes.append(federation.joins[name])
        yield federation
    finally:
        for process in federation.ending:
            if process.poll() is None:
                process.kill()
                process.wait()
        for process in federation.bare.values():  # its SuperExec too, or that one notices only seconds later
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = [process.wait(60) for process in processes]
        bare_codes = [process.wait(60) for process in federation.bare.values()]
        assert set(codes) <= {143} and set(bare_codes) <= {0}, (codes, bare_codes)
        deadline = time.monotonic() + 10  # a bare SuperNode's own SuperExec notices its parent gone within seconds
        while processes_marked(federation.mark) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert processes_marked(federation.mark) == {}
