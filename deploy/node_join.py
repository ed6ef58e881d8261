"""`fedgov node join`: a team node takes part, with Flower's SuperNode and fedgov's gatekeeper side by side.

The SuperNode (`--isolation process`) keeps the TLS, authenticated connection to the
coordinator and launches no app code itself; the gatekeeper (deploy/gatekeeper.py), in this
process, takes each task from the SuperNode's loopback Runtime API with a secret the two share
(made afresh at every start, 0600) and runs only what the site's policy allows. The node's id,
key and site file reach the ClientApp through `--node-config`. Everything is checked before
anything starts (one line per problem), and on Ctrl-C or SIGTERM both stop, with nothing left.
The SuperNode reconnects by itself after a coordinator restart. When the coordinator refuses
to activate it, Flower prints `Exit Code: 305` and exits 1, for a key it never registered and
for a registered node it still counts online (for up to a minute after a crash) alike; the
Fleet proxy names the first (`deploy/fleet_proxy.NOT_REGISTERED`), which ends `node join` at
once with one line, and the second is started again for `RETRY_FOR` seconds.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from client.site import Site
from deploy.connection_watch import ConnectionWatch
from deploy.gatekeeper import serve, task_environment
from deploy.node_files import Registration
from governance.errors import PolicyError, UsageError
from governance.identity import NodeKey

RETRY_FOR = 90.0  # seconds within which a refused activation is retried
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class NodeDir:
    """A node directory made by `fedgov node init`, checked."""

    path: Path
    node_id: str

    @classmethod
    def open(cls, path: Path) -> "NodeDir":
        try:
            registration = Registration.from_json((path / "registration.json").read_bytes(),
                                                  str(path / "registration.json"))
        except OSError as err:
            raise UsageError(f"{path} is not a node directory ({err.strerror}: registration.json); make it with "
                             "`fedgov node init ID --out DIR`") from None
        node = cls(path, registration.node_id)
        NodeKey.load(node.key)  # it must exist, 0600, an Ed25519 key: refused here, not in the first round
        if not node.auth_key.is_file():
            raise UsageError(f"{node.auth_key} is missing; it is the SuperNode key `fedgov node init` made")
        Site.load(node.site)  # policy and data schema parse (the data itself is checked per task)
        return node

    @property
    def key(self) -> Path:
        return self.path / "node.key"

    @property
    def auth_key(self) -> Path:
        return self.path / f"{self.node_id}.auth"

    @property
    def site(self) -> Path:
        return self.path / "policy.toml"

    def node_config(self) -> str:
        """`--node-config`: what the ClientApp reads of the node (TOML values, so paths are quoted)."""
        return " ".join(f"{key}={json.dumps(value)}" for key, value in (
            ("fedgov-node-id", self.node_id), ("fedgov-key", str(self.key.resolve())),
            ("fedgov-site", str(self.site.resolve()))))


def supernode_command(node: NodeDir, superlink: str, ca: Path, secret: Path, runtime_port: int) -> list[str]:
    return [str(BIN / "flower-supernode"), "--root-certificates", str(ca), "--superlink", superlink,
            "--auth-supernode-private-key", str(node.auth_key), "--isolation", "process",
            "--superexec-auth-secret-file", str(secret), "--port", str(runtime_port),
            "--node-config", node.node_config()]


def join(node: NodeDir, superlink: str, ca: Path, runtime_port: int, echo) -> None:
    """Run the node until interrupted (KeyboardInterrupt propagates) or its SuperNode gives up (PolicyError)."""
    from fedgov.processes import guarded, parent_death_signal
    from governance.private_files import FILE_MODE, write_atomic

    if not ca.is_file():
        raise UsageError(f"the CA certificate {ca} does not exist; copy the federation's ca.crt to this machine")
    secret = node.path / "superexec.secret"
    write_atomic(secret, secrets.token_bytes(32), mode=FILE_MODE)
    env = {**task_environment(), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "FLWR_HOME": str(node.path.resolve() / "flwr-home"), "FLWR_TELEMETRY_ENABLED": "0",
           "FLWR_DISABLE_UPDATE_CHECK": "1"}
    os.environ.update({k: env[k] for k in ("FLWR_HOME", "FLWR_TELEMETRY_ENABLED", "FLWR_DISABLE_UPDATE_CHECK")})
    runtime = f"127.0.0.1:{runtime_port}"
    stop = threading.Event()
    keeper = threading.Thread(target=_keep_serving, args=(runtime, secret.read_bytes(), node.site, stop),
                              name="fedgov-gatekeeper", daemon=True)
    started_at = time.monotonic()
    with guarded(env) as started:
        keeper.start()
        try:
            while True:
                supernode = subprocess.Popen(supernode_command(node, superlink, ca, secret, runtime_port), env=env,
                                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                             preexec_fn=parent_death_signal())
                started.append(supernode)
                echo(f"node {node.node_id}: SuperNode started (pid {supernode.pid}), connecting to {superlink}; "
                     f"gatekeeper on {runtime}")
                watch = ConnectionWatch(node.node_id, superlink)
                code = _follow(supernode, watch, echo)
                if watch.unregistered:
                    raise PolicyError(f"node {node.node_id}: not registered: ask the operator to run `fedgov node "
                                      f"register` with {node.path / 'registration.json'} (the coordinator refused "
                                      "this node's key)")
                if watch.refused and time.monotonic() - started_at < RETRY_FOR:
                    echo(f"node {node.node_id}: the coordinator refused the activation (it may still count an "
                         "earlier session); trying again in 5 s")
                    time.sleep(5)
                    continue
                if watch.refused:
                    raise PolicyError(f"node {node.node_id}: the coordinator refused the connection for "
                                      f"{RETRY_FOR:g} s (Flower's reason above): if it is registered, another "
                                      "SuperNode with its key may be online; if not, ask the operator to run "
                                      "`fedgov node register`")
                raise PolicyError(f"node {node.node_id}: the SuperNode stopped with exit code {code}; see its "
                                  "output above")
        finally:
            stop.set()
            keeper.join(5)


def _follow(supernode: subprocess.Popen, watch: ConnectionWatch, echo) -> int:
    """Pass the SuperNode's output on as it comes, with a line of ours at each change of connection state;
    return its exit code."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for raw in supernode.stdout:
            lines.put(raw.decode("utf-8", "replace"))
        lines.put(None)

    threading.Thread(target=read, name="supernode-output", daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            line = ""
        if line is None:
            return supernode.wait()
        if line:
            sys.stdout.write(line)
            sys.stdout.flush()
        said = watch.feed(line, time.monotonic()) if line else watch.tick(time.monotonic())
        if said:
            echo(said)


def _keep_serving(runtime: str, secret: bytes, site: Path, stop: threading.Event) -> None:
    """The gatekeeper loop; while the SuperNode's Runtime API is not up yet (or restarting), wait and retry."""
    while not stop.is_set():
        try:
            serve(runtime, secret, site, stop)
        except Exception:  # noqa: BLE001 - the Runtime API is not up yet, or went away: try again
            stop.wait(1.0)
