"""A loopback federation for the deployment tests, set up with the commands a person types.

`fedgov audit init`, `fedgov server start`, and per node `fedgov node init`, its site file (an approved
`fedgov app hash`, its purposes, 40 own rows of breast-cancer), `fedgov node register`, `fedgov consent
grant` and `fedgov node join`. Every process carries the federation's own mark; on leaving, each gets
SIGTERM and must exit 143, and no marked process may be left.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import processes_marked
from tests.deploy.superlink import free_port
from tests.deploy.test_node_join import site_file
from tests.deploy.test_server_start import make_certs
from tests.fedgov_command import MARK_VARIABLE, fedgov_argv, fedgov_env, run_fedgov

PURPOSE = "triage model"


@dataclass
class Federation:
    root: Path
    mark: str
    link: int  # the SuperLink's loopback port (Control API): what `fedgov run` and `node register` use
    fleet: int  # the Fleet proxy's port: what nodes join
    joins: dict[str, subprocess.Popen] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)

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

    def run_args(self, purpose: str, nodes: int, rounds: int) -> list[str]:
        return ["run", "--purpose", purpose, "--superlink", f"127.0.0.1:{self.link}", "--ca",
                str(self.root / "coord" / "ca.crt"), "--nodes", str(nodes), "--rounds", str(rounds)]


def _background(args: list[str], out: Path, mark: str, cwd: Path) -> subprocess.Popen:
    with open(out, "w") as sink:
        return subprocess.Popen(fedgov_argv(*args), stdout=sink, stderr=subprocess.STDOUT,
                                env=fedgov_env({MARK_VARIABLE: mark, "FEDGOV_HOME": str(cwd / "ws")}), cwd=cwd)


def _wait_for(path: Path, text: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text() if path.exists() else ""):
        assert process.poll() is None and time.monotonic() < deadline, path.read_text()[-3000:]
        time.sleep(0.2)


@contextmanager
def loopback_federation(root: Path, nodes: Mapping[str, tuple[str, ...]]) -> Iterator[Federation]:
    """A coordinator and one joined node per entry (name -> the purposes its own policy allows)."""
    federation = Federation(root, f"federation-{uuid.uuid4().hex}", free_port(), free_port())
    assert run_fedgov("audit", "init", env=federation.env).returncode == 0
    certs = make_certs(root)
    processes = federation.processes
    try:
        federation.start_server()
        app_hash = run_fedgov("app", "hash").stdout.strip()
        for name, purposes in nodes.items():
            node = root / name
            assert run_fedgov("node", "init", name, "--out", str(node)).returncode == 0
            site_file(node, [app_hash], purposes)
            registered = run_fedgov("node", "register", str(node / "registration.json"), "--team", name,
                                    "--superlink", f"127.0.0.1:{federation.link}", "--ca", str(certs / "ca.crt"),
                                    env=federation.env)
            assert registered.returncode == 0, registered.stderr
            granted = run_fedgov("consent", "grant", "--node", name, "--team", name, "--purpose", PURPOSE,
                                 "--data-category", "imaging", "--notice-version", "1", "--notice-hash", "a" * 64,
                                 env=federation.env)
            assert granted.returncode == 0, granted.stderr
            federation.joins[name] = _background(
                ["node", "join", "--dir", str(node), "--superlink", f"127.0.0.1:{federation.fleet}", "--ca",
                 str(certs / "ca.crt"), "--runtime-port", str(free_port())], root / f"{name}.out", federation.mark, root)
            processes.append(federation.joins[name])
        yield federation
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = [process.wait(60) for process in processes]
        assert set(codes) <= {143}, codes
        time.sleep(0.5)
        assert processes_marked(federation.mark) == {}
