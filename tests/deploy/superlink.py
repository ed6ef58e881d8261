"""A real Flower SuperLink for the deployment tests: TLS from `fedgov certs`, node authentication, on loopback.

Started in its own session and ended with its whole process group, so nothing it starts
(its SuperExec) outlives the test.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from deploy.certs import issue_coordinator, make_ca

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class SuperLink:
    address: str
    ca: Path
    process: subprocess.Popen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_certs(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca()
    coordinator = issue_coordinator(ca, [])
    for name, data in (("ca.crt", ca.cert_pem), ("coordinator.crt", coordinator.cert_pem),
                       ("coordinator.key", coordinator.key_pem)):
        (directory / name).write_bytes(data)
    os.chmod(directory / "coordinator.key", 0o600)
    return directory


def _healthy(port: int, ca: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return tls.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@contextmanager
def running_superlink(directory: Path) -> Iterator[SuperLink]:
    certs = write_certs(directory / "certs")
    port = free_port()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "FLWR_HOME": str(directory / "flwr"),
           "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
    log = open(directory / "superlink.log", "wb")
    process = subprocess.Popen(
        [str(BIN / "flower-superlink"), "--ssl-ca-certfile", str(certs / "ca.crt"), "--ssl-certfile",
         str(certs / "coordinator.crt"), "--ssl-keyfile", str(certs / "coordinator.key"), "--host", "127.0.0.1",
         "--port", str(port), "--database", str(directory / "state.db"), "--enable-supernode-auth",
         "--disable-runtime-dependency-installation"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _healthy(port, certs / "ca.crt"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the SuperLink did not start: {(directory / 'superlink.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield SuperLink(f"127.0.0.1:{port}", certs / "ca.crt", process)
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(5)
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()
