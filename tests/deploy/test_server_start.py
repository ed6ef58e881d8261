"""`fedgov server start`: a real SuperLink and fedgov's gatekeeper on loopback, and only the Fleet API on the public port.

One coordinator serves the module's read-only checks; the tests that stop a coordinator
start their own. Every process a test starts carries a mark of its own (MARK_VARIABLE), so
the checks for leftovers see only those.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import processes_marked
from tests.deploy.superlink import free_port
from tests.fedgov_command import MARK_VARIABLE, fedgov_argv, fedgov_env, run_fedgov

BIN = Path(sys.executable).parent
FLOWER = ("flower-superlink", "deploy.coordinator_gate", "flower-supernode", "flwr-")


@dataclass
class Running:
    """A `fedgov server start` in the background, with its output files and its own mark."""

    process: subprocess.Popen
    out: Path
    err: Path
    certs: Path
    state: Path
    fleet: int
    link: int
    mark: str

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines()

    def processes(self) -> dict[int, str]:
        return processes_marked(self.mark, FLOWER)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(30)


def make_certs(where: Path) -> Path:
    for args in (["ca", "--out", "ca"], ["coordinator", "--ca", "ca", "--out", "coord"],
                 ["node", "site1", "--out", "nodes"]):
        result = run_fedgov("certs", *args, cwd=where)
        assert result.returncode == 0, result.stderr
    return where / "coord"


def start(where: Path, certs: Path, *extra: str, timeout: float = 60, env: dict[str, str] | None = None) -> Running:
    where.mkdir(parents=True, exist_ok=True)
    fleet, link, mark = free_port(), free_port(), f"server-{uuid.uuid4().hex}"
    out, err = where / "server.out", where / "server.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen(
            fedgov_argv("server", "start", "--certs", str(certs), "--listen", f"127.0.0.1:{fleet}",
                        "--link-port", str(link), "--state-dir", str(where / "state"), *extra),
            stdout=stdout, stderr=stderr, env=fedgov_env({MARK_VARIABLE: mark, **(env or {})}), cwd=where)
    running = Running(process, out, err, certs, where / "state", fleet, link, mark)
    deadline = time.monotonic() + timeout
    while not any(line.startswith("coordinator up") for line in running.lines()):
        if process.poll() is not None or time.monotonic() > deadline:
            running.stop(signal.SIGKILL)
            pytest.fail(f"fedgov server start did not come up: {err.read_text()}")
        time.sleep(0.1)
    return running


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory: pytest.TempPathFactory):
    where = tmp_path_factory.mktemp("coordinator")
    running = start(where, make_certs(where))
    yield running
    running.stop()


def tls_context(certs: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs / "ca.crt"))


def call(port: int, certs: Path, method: str, path: str, body: bytes | None = b"\x08\x01") -> tuple[int, bytes]:
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=20, context=tls_context(certs))
    try:
        connection.request(method, path, body=body, headers={"content-type": "application/protobuf"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def raw_tls(port: int, certs: Path, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as plain, \
            tls_context(certs).wrap_socket(plain, server_hostname="127.0.0.1") as tls:
        tls.sendall(request)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        return answer


def test_it_prints_one_line_per_component_with_its_address(coordinator: Running):
    lines = coordinator.lines()
    assert len(lines) == 4
    assert lines[0].startswith(f"superlink: https://127.0.0.1:{coordinator.link} (loopback only")
    assert lines[1].startswith("gatekeeper: starts a ServerApp only for an approved app bundle (fedgov's own), and "
                               "gives only it the ledger credentials")
    assert lines[2].startswith(f"fleet:     https://127.0.0.1:{coordinator.fleet} (the Fleet API only")
    assert lines[3] == f"coordinator up; logs in {coordinator.state / 'logs'}; stop it with Ctrl-C or SIGTERM"
    assert coordinator.err.read_text() == ""


def test_the_loopback_superlink_answers_health_over_tls_checked_against_the_ca(coordinator: Running):
    assert call(coordinator.link, coordinator.certs, "GET", "/health", None)[0] == 200


def test_a_fleet_call_is_forwarded_to_the_superlink(coordinator: Running):
    status, body = call(coordinator.fleet, coordinator.certs, "POST", "/v1/fleet/get-run", b"\xff\xff")
    assert (status, body) == (400, b'{"code":1003,"detail":"Invalid protobuf payload."}')  # Flower's own answer


@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/control/list-runs"), ("POST", "/v1/control/start-run"), ("POST", "/v1/runtime/get-nodes"),
    ("GET", "/health"), ("GET", "/docs"), ("GET", "/openapi.json"), ("GET", "/v1/fleet/get-run"),
    ("POST", "/v1/fleet/../control/list-runs"), ("POST", "/v1/fleet/%2e%2e/control/list-runs"),
    ("POST", "/v1/fleet/get-run?next=/v1/control/list-runs"),
])
def test_anything_but_a_fleet_call_is_404_through_the_proxy(coordinator: Running, method: str, path: str):
    status, body = call(coordinator.fleet, coordinator.certs, method, path)
    assert (status, body) == (404, b"not found: this port serves the Fleet API only\n")


def test_the_control_api_answers_on_loopback_only(coordinator: Running):
    assert call(coordinator.link, coordinator.certs, "POST", "/v1/control/list-runs", b"")[0] == 200
    assert call(coordinator.fleet, coordinator.certs, "POST", "/v1/control/list-runs", b"")[0] == 404


def test_plain_http_to_the_proxy_gets_no_answer(coordinator: Running):
    connection = http.client.HTTPConnection("127.0.0.1", coordinator.fleet, timeout=20)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        connection.request("POST", "/v1/fleet/get-run", body=b"\x08\x01")
        connection.getresponse()
    connection.close()


@pytest.mark.parametrize("headers,status", [
    (b"Content-Type: application/protobuf\r\n", b"411"),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n", b"400"),
    (b"Content-Length: 2\r\nContent-Length: 2\r\n", b"400"),
    (b"Content-Length: 2\r\nflwr-signature: a\r\nflwr-signature: b\r\n", b"400"),
    (b"Content-Length: 33554433\r\n", b"413"),
])
def test_a_request_without_one_bounded_length_or_with_doubled_headers_is_refused(coordinator: Running, headers: bytes,
                                                                                 status: bytes):
    answer = raw_tls(coordinator.fleet, coordinator.certs,
                     b"POST /v1/fleet/get-run HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n\x08\x01")
    assert answer.startswith(b"HTTP/1.1 " + status + b" ")
    assert b"\r\nConnection: close\r\n" in answer


def test_the_state_is_private_and_the_secret_is_fresh(coordinator: Running):
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [coordinator.state, *coordinator.state.iterdir()]}
    assert modes["state"] == 0o700 and modes["superexec.secret"] == modes["state.db"] == 0o600
    assert len((coordinator.state / "superexec.secret").read_bytes()) == 64


def test_a_registered_supernode_connects_through_the_proxy(coordinator: Running, tmp_path: Path):
    from cryptography.hazmat.primitives import serialization
    from flwr.proto.control_pb2 import ListNodesRequest, RegisterNodeRequest
    from flwr.supercore.control import ControlHttpClient
    from flwr.supercore.interceptors.http.runtime_version import RuntimeVersionHttpInterceptor

    nodes = coordinator.certs.parent / "nodes"
    public = serialization.load_ssh_public_key((nodes / "site1.auth.pub").read_bytes())
    control = ControlHttpClient.from_server_address(
        f"127.0.0.1:{coordinator.link}", insecure=False, root_certificates=str(coordinator.certs / "ca.crt"),
        interceptors=[RuntimeVersionHttpInterceptor(component_name="flwr CLI")])
    with control:
        node_id = control.RegisterNode(RegisterNodeRequest(public_key=public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), name="site1")).node_id
        mark = f"node-{uuid.uuid4().hex}"
        env = fedgov_env({MARK_VARIABLE: mark, "FLWR_HOME": str(tmp_path / "flwr-home"),
                          "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"})
        node = subprocess.Popen(
            [str(BIN / "flower-supernode"), "--root-certificates", str(coordinator.certs / "ca.crt"),
             "--superlink", f"127.0.0.1:{coordinator.fleet}", "--auth-supernode-private-key",
             str(nodes / "site1.auth"), "--port", str(free_port())],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline, status = time.monotonic() + 30, ""
            while status != "online" and time.monotonic() < deadline and node.poll() is None:
                time.sleep(0.5)
                status = {n.node_id: n.status for n in control.ListNodes(ListNodesRequest()).nodes_info}[node_id]
            assert status == "online"
        finally:
            node.terminate()
            node.wait(20)
            for pid in processes_marked(mark):  # what the SuperNode started, found by this test's own mark
                os.kill(pid, signal.SIGKILL)


def test_sigterm_ends_every_process_it_started(tmp_path: Path):
    (tmp_path / "ledger.pass").write_text("test-passphrase\n")  # and the passphrase can come from a file
    running = start(tmp_path / "server", make_certs(tmp_path), "--passphrase-file", str(tmp_path / "ledger.pass"),
                    env={"FEDGOV_PASSPHRASE": ""})
    try:  # what to check while it runs, then stop it whatever the checks find
        said = running.lines()
        commands = " ".join(running.processes().values())
    finally:
        code = running.stop(signal.SIGTERM)
    assert not any("no FEDGOV_PASSPHRASE" in line for line in said)
    assert "flower-superlink" in commands and "deploy.coordinator_gate" in commands
    assert code == 143
    assert running.lines()[-1] == "coordinator stopped by SIGTERM; every process it started has ended"
    assert processes_marked(running.mark) == {}
    assert not (running.state / "superexec.secret").exists()


def test_a_component_that_dies_stops_the_others_and_is_named(tmp_path: Path):
    running = start(tmp_path / "server", make_certs(tmp_path))
    try:
        superlink = next(pid for pid, cmd in running.processes().items() if "flower-superlink" in cmd)
        os.kill(superlink, signal.SIGKILL)
        code = running.process.wait(30)
    finally:
        running.stop(signal.SIGTERM)  # nothing left running if that failed (it has exited when it did not)
    assert code == 1
    error = running.err.read_text()
    assert error.startswith(f"error: flower-superlink (pid {superlink}) was killed by SIGKILL; the coordinator "
                            "stopped everything it started; its log: ")
    assert error.count("\n") == 1
    assert processes_marked(running.mark) == {}


@pytest.fixture(scope="module")
def bad_inputs(coordinator: Running, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Certificate directories that are wrong in one way each, beside the good one."""
    where = tmp_path_factory.mktemp("bad")
    (where / "empty").mkdir()
    (where / "other-ca").mkdir()
    other = make_certs(where / "other-ca")
    mixed = where / "mixed"
    mixed.mkdir()
    for name in ("ca.crt", "coordinator.key"):
        (mixed / name).write_bytes((coordinator.certs / name).read_bytes())
    (mixed / "coordinator.crt").write_bytes((other / "coordinator.crt").read_bytes())
    os.chmod(mixed / "coordinator.key", 0o600)
    loose = where / "loose"
    loose.mkdir()
    for name in ("ca.crt", "coordinator.crt", "coordinator.key"):
        (loose / name).write_bytes((coordinator.certs / name).read_bytes())
    os.chmod(loose / "coordinator.key", 0o644)
    return where


@pytest.mark.parametrize("case,line", [
    ("no-certs", "error: --certs DIR is required: fedgov server start has no insecure mode (make the coordinator's TLS "
                 "files with `fedgov certs coordinator --ca CA_DIR --out DIR`)"),
    ("empty", "error: cannot read {bad}/empty/ca.crt (No such file or directory); --certs names the directory of the "
              "coordinator's TLS files: make them with `fedgov certs coordinator --ca CA_DIR --out DIR`"),
    ("mixed", "error: {bad}/mixed/coordinator.key does not belong to {bad}/mixed/coordinator.crt; use the pair "
              "`fedgov certs coordinator` wrote together"),
    ("loose", "error: {bad}/loose/coordinator.key can be read by other users (mode 0644); make it private: chmod 600 "
              "{bad}/loose/coordinator.key"),
    ("listen", "error: --listen 'example.org:9092' is not IP:PORT (e.g. 0.0.0.0:9092, 10.0.0.5:9092, [::]:9092)"),
    ("fleet-busy", "error: cannot listen on --listen 127.0.0.1:{fleet}: the port is in use; stop what uses it or "
                   "choose another"),
    ("link-busy", "error: cannot start the SuperLink on --link-port {link}: the port is in use; stop what uses it or "
                  "choose another"),
    ("same-state", "error: another `fedgov server start` is running on {state}; stop it first, or give this one its "
                   "own --state-dir"),
    ("approve-app", "error: --approve-app 'abc' is not a SHA-256 (64 hex digits, as `fedgov app hash` prints one)"),
    ("no-passphrase-file", "error: cannot read passphrase file {tmp}/nowhere: No such file or directory"),
    ("empty-passphrase-file", "error: --passphrase-file {tmp}/empty.pass is empty; it holds the ledger's passphrase"),
])
def test_bad_input_is_one_line_exit_2_and_starts_nothing(coordinator: Running, bad_inputs: Path, tmp_path: Path,
                                                         case: str, line: str):
    good = ["--certs", str(coordinator.certs), "--state-dir", str(tmp_path / "state")]
    args = {
        "no-certs": ["--state-dir", str(tmp_path / "state")],
        "empty": ["--certs", str(bad_inputs / "empty")],
        "mixed": ["--certs", str(bad_inputs / "mixed")],
        "loose": ["--certs", str(bad_inputs / "loose")],
        "listen": [*good, "--listen", "example.org:9092"],
        "fleet-busy": [*good, "--listen", f"127.0.0.1:{coordinator.fleet}", "--link-port", str(free_port())],
        "link-busy": [*good, "--listen", f"127.0.0.1:{free_port()}", "--link-port", str(coordinator.link)],
        "same-state": ["--certs", str(coordinator.certs), "--state-dir", str(coordinator.state),
                       "--listen", f"127.0.0.1:{free_port()}", "--link-port", str(free_port())],
        "approve-app": [*good, "--approve-app", "a" * 64, "--approve-app", "abc"],
        "no-passphrase-file": [*good, "--passphrase-file", str(tmp_path / "nowhere")],
        "empty-passphrase-file": [*good, "--passphrase-file", str(tmp_path / "empty.pass")],
    }[case]
    (tmp_path / "empty.pass").write_text("\n")
    mark = f"bad-{uuid.uuid4().hex}"
    result = run_fedgov("server", "start", *args, env={MARK_VARIABLE: mark}, cwd=tmp_path)
    expected = line.format(bad=bad_inputs, fleet=coordinator.fleet, link=coordinator.link, state=coordinator.state,
                           tmp=tmp_path)
    assert (result.returncode, result.stderr, result.stdout) == (2, expected + "\n", "")
    assert processes_marked(mark) == {}
