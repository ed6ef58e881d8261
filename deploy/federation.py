"""`fedgov federation up|down|status`: a rehearsal of a real federation on this machine (like NVFlare's POC mode).

Everything a real deployment has, on loopback, in separate processes started by the same
commands a person types: `fedgov server start` (TLS, SuperNode authentication, the Fleet-only
proxy) and, per node, `fedgov node join` (its own SuperNode, gatekeeper, keys, site policy and
CSV). The nodes are registered (`fedgov node register`'s code) and granted consent for the
federation's purpose; each node's CSV is its Dirichlet share of a bundled dataset.

Its files live in the workspace, beside the coordinator's state:

```
<workspace>/federation/certs/             ca.crt, ca.key, coordinator.crt, coordinator.key
<workspace>/federation/nodes/<id>/        each node's directory, as `fedgov node init` makes it, filled in
<workspace>/federation/logs/              the supervisor's, the coordinator's and each node's output
<workspace>/federation/federation.json    while up: the supervisor's pid and start time, the ports, the nodes
```

`up` starts one supervisor process in its own session (`fedgov federation serve`), which starts
and watches the coordinator and the nodes, each with a parent-death signal: whatever ends the
supervisor, even `kill -9`, ends them. `down` stops exactly that supervisor (its pid and its
start time must both match what `up` recorded, so a recycled pid is never signalled), which
stops everything it started. `up` returns once every node is connected, and if it is
interrupted before, it stops what it started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from deploy.coordinator import last_line as _last_line
from governance.errors import FedgovError, UsageError

STATE_FORMAT = "fedgov.federation.v1"
NOTICE = "fedgov federation rehearsal: nodes train on their share of a bundled public dataset (notice v1)"
DEFAULT_PURPOSE = "rehearsal: breast-cancer screening model"
UP_TIMEOUT = 180.0  # coordinator start-up and N SuperNodes connecting, on a busy 2-core machine
STOP_TIMEOUT = 60.0


class FederationFailed(FedgovError):
    """The rehearsal could not be brought up, or stopped on its own; everything it started has ended."""

    exit_code = 1


@dataclass(frozen=True)
class FederationFiles:
    """Where one workspace's rehearsal keeps its files."""

    root: Path

    @classmethod
    def of(cls, workspace: Path) -> "FederationFiles":
        return cls(workspace / "federation")

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    @property
    def ca(self) -> Path:
        return self.certs / "ca.crt"

    @property
    def nodes(self) -> Path:
        return self.root / "nodes"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def state(self) -> Path:
        return self.root / "federation.json"

    def node(self, node_id: str) -> Path:
        return self.nodes / node_id


def node_ids(count: int) -> list[str]:
    """site-01, site-02, …: names that sort the way they count."""
    width = max(2, len(str(count)))
    return [f"site-{i:0{width}d}" for i in range(1, count + 1)]


def team_of(node_id: str) -> str:
    return f"team-{node_id.removeprefix('site-')}"


# ---- files: certificates, node directories and their data (idempotent, never overwriting a key) ----

def prepare(files: FederationFiles, nodes: list[str], dataset: str, alpha: float, seed: int, purpose: str,
            say: Callable[[str], None]) -> None:
    """Make what is missing: the CA and the coordinator's certificate, each node's directory, site file and CSV."""
    from deploy.app_bundle import bundle_sha256
    from governance.private_files import make_private_dir

    for directory in (files.root, files.certs, files.nodes, files.logs):
        make_private_dir(directory)
    if not files.ca.exists():
        _make_certs(files.certs)
        say(f"made a private CA and the coordinator's certificate in {files.certs}")
    approved = bundle_sha256()
    shares = _shares(dataset, len(nodes), alpha, seed)
    for node_id, (x, y) in zip(nodes, shares):
        directory = files.node(node_id)
        if not (directory / "registration.json").exists():
            _init_node(node_id, directory)
        _write_site(directory, dataset, x, y, purpose, approved)
    say(f"{len(nodes)} node directories in {files.nodes}, each with its own keys, policy and CSV "
        f"({dataset}, Dirichlet alpha {alpha:g})")


def _make_certs(directory: Path) -> None:
    from deploy.certs import issue_coordinator, make_ca
    from governance.private_files import FILE_MODE, UMASK_MODE, write_atomic

    ca = make_ca("fedgov federation rehearsal CA", 825)
    coordinator = issue_coordinator(ca, [])
    for name, data, private in (("ca.key", ca.key_pem, True), ("coordinator.crt", coordinator.cert_pem, False),
                                ("coordinator.key", coordinator.key_pem, True), ("ca.crt", ca.cert_pem, False)):
        write_atomic(directory / name, data, mode=FILE_MODE if private else UMASK_MODE)


def _init_node(node_id: str, directory: Path) -> None:
    """What `fedgov node init` makes: signing key, SuperNode auth key pair, registration.json."""
    from deploy.certs import node_auth_keys
    from deploy.node_files import Registration
    from governance.identity import NodeKey
    from governance.private_files import FILE_MODE, UMASK_MODE, make_private_dir, write_atomic

    make_private_dir(directory)
    signing = NodeKey.load_or_create(directory / "node.key")
    private, public = node_auth_keys()
    write_atomic(directory / f"{node_id}.auth", private, mode=FILE_MODE)
    write_atomic(directory / f"{node_id}.auth.pub", public, mode=UMASK_MODE)
    registration = Registration(node_id, signing.public_bytes(), public.decode().strip())
    write_atomic(directory / "registration.json", registration.to_json(), mode=UMASK_MODE)


def _shares(dataset: str, count: int, alpha: float, seed: int) -> list[tuple]:
    """Each node's rows: its Dirichlet (label-skewed) share of the bundled dataset's training pool."""
    from fedgov.datasets import load_split
    from fedgov.partition import dirichlet_indices

    pool, _ = load_split(dataset, seed)
    if count > len(pool):
        raise UsageError(f"--nodes {count} is more than the {len(pool)} rows of {dataset}; choose at most {len(pool)}")
    return [(pool.x[rows], pool.y[rows]) for rows in dirichlet_indices(pool.y, count, alpha, seed)]


def _write_site(directory: Path, dataset: str, x, y, purpose: str, approved: str) -> None:
    """The node's CSV and its site file: it allows the federation's purpose and fedgov's own app bundle."""
    from client.site import site_file_text
    from fedgov.datasets import Dataset
    from fedgov.local_data import schema_for, write_csv
    from governance.private_files import UMASK_MODE, write_atomic

    schema = schema_for(dataset)
    write_csv(directory / "data.csv", Dataset(dataset, x, y, len(schema.labels)), schema)
    site = ("# Written by `fedgov federation up`: this rehearsal node's own policy and data.\n"
            + site_file_text([purpose], [approved], schema))
    write_atomic(directory / "policy.toml", site.encode("utf-8"), mode=UMASK_MODE)


# ---- the state file: what `down` and `status` need, and proof of which process is the supervisor ----

@dataclass(frozen=True)
class State:
    pid: int
    started: str  # /proc/<pid>/stat's start time: a pid is reused, the pair is not
    link: str  # the SuperLink's loopback address (Control API): for `fedgov run`
    fleet: str  # where the nodes connect
    ca: str
    purpose: str
    dataset: str
    nodes: dict[str, dict]  # node id -> {"team", "flower_node_id"}
    phase: str  # "starting", "up", or "failed"
    error: str = ""

    def to_json(self) -> bytes:
        doc = {"format": STATE_FORMAT, **{k: getattr(self, k) for k in self.__dataclass_fields__}}
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def read(cls, path: Path) -> "State | None":
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise UsageError(f"{path} cannot be read ({err}); if no federation is running, remove it") from None
        if not isinstance(doc, dict) or doc.pop("format", None) != STATE_FORMAT:
            raise UsageError(f"{path} is not a {STATE_FORMAT} file; if no federation is running, remove it")
        try:
            return cls(**doc)
        except TypeError:
            raise UsageError(f"{path} is not a {STATE_FORMAT} file; if no federation is running, remove it") from None

    def write(self, path: Path) -> None:
        from governance.private_files import write_atomic

        write_atomic(path, self.to_json())

    @property
    def alive(self) -> bool:
        """Whether the supervisor `up` started still runs (pid and start time both match)."""
        return start_time(self.pid) == self.started


def start_time(pid: int) -> str:
    """The kernel's start time of `pid` (clock ticks since boot), or "" when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def running_state(files: FederationFiles) -> State | None:
    """The state of a federation whose supervisor runs now; None when none does."""
    state = State.read(files.state)
    return state if state is not None and state.alive else None


# ---- up, down, status ----

def up(workspace: Path, files: FederationFiles, serve_args: list[str], env: dict[str, str],
       say: Callable[[str], None], timeout: float = UP_TIMEOUT) -> State:
    """Start the supervisor in its own session and wait until every node is connected (or it failed)."""
    running = running_state(files)
    if running is not None:
        raise UsageError(f"a federation is already up in {workspace} (supervisor pid {running.pid}); see `fedgov "
                         "federation status`, or stop it with `fedgov federation down`")
    files.state.unlink(missing_ok=True)  # a stale one, from a supervisor that is gone
    log = files.logs / "federation.log"
    seen = log.stat().st_size if log.exists() else 0  # an earlier `up` wrote the lines before
    with open(log, "ab") as out:
        supervisor = subprocess.Popen([sys.executable, "-m", "cli", "federation", "serve", "--workspace",
                                       str(workspace), *serve_args], env=env, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return _wait_up(files, supervisor, log, seen, timeout, say)
    except BaseException:
        _stop(supervisor.pid, start_time(supervisor.pid))  # interrupted, timed out or failed: nothing stays
        try:
            supervisor.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        raise


def _wait_up(files: FederationFiles, supervisor: subprocess.Popen, log: Path, seen: int, timeout: float,
             say: Callable[[str], None]) -> State:
    deadline = time.monotonic() + timeout
    shown = 0
    while True:
        lines = _read_from(log, seen).splitlines()
        for line in lines[shown:]:
            say(line)
        shown = len(lines)
        state = State.read(files.state) if files.state.exists() else None
        if state is not None and state.pid == supervisor.pid and state.phase == "up":
            return state
        code = supervisor.poll()
        if code is not None:
            why = state.error if state is not None and state.error else (lines[-1] if lines else f"exit code {code}")
            raise FederationFailed(f"the federation did not come up: {why} (log: {log})")
        if time.monotonic() > deadline:
            raise FederationFailed(f"the federation was not up within {timeout:g} s; it was stopped (log: {log})")
        time.sleep(0.3)


def down(files: FederationFiles, timeout: float = STOP_TIMEOUT) -> State:
    """Stop the supervisor `up` started (and so everything it started); UsageError when none runs."""
    state = State.read(files.state)
    if state is None or not state.alive:
        files.state.unlink(missing_ok=True)
        raise UsageError(f"no federation is running in {files.root.parent}; start one with `fedgov federation up`")
    _stop(state.pid, state.started)
    deadline = time.monotonic() + timeout
    while state.alive:
        if time.monotonic() > deadline:
            raise FederationFailed(f"the federation's supervisor (pid {state.pid}) did not stop within {timeout:g} s")
        time.sleep(0.2)
    files.state.unlink(missing_ok=True)
    return state


def _stop(pid: int, started: str) -> None:
    if started and start_time(pid) == started:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


@dataclass(frozen=True)
class NodeStatus:
    node_id: str
    team: str
    flower_node_id: str
    connected: bool
    stopped: str = ""  # why its `fedgov node join` ended, if it did


def status(state: State) -> list[NodeStatus]:
    """Each node of the federation, connected or not, as the SuperLink sees it now."""
    from deploy.registration import control_client, flower_call
    from flwr.proto.control_pb2 import ListNodesRequest

    with control_client(state.link, Path(state.ca)) as client:
        infos = flower_call("list the nodes", lambda: client.ListNodes(ListNodesRequest()).nodes_info)
    online = {str(info.node_id) for info in infos if info.status == "online"}
    return [NodeStatus(node_id, node["team"], node["flower_node_id"],
                       node["flower_node_id"] in online and not node.get("exited"), node.get("exited", ""))
            for node_id, node in sorted(state.nodes.items())]


# ---- the supervisor (`fedgov federation serve`, started by `up`) ----

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(workspace: Path, files: FederationFiles, purpose: str, dataset: str, nodes: list[str],
          say: Callable[[str], None] = print) -> None:
    """Start the coordinator, register the nodes and grant consent, start the nodes; watch until a signal."""
    from fedgov.coordinator_keys import split_secrets
    from fedgov.processes import guarded, parent_death_signal

    me, started_at = os.getpid(), start_time(os.getpid())
    link, fleet = free_port(), free_port()
    state = State(me, started_at, f"127.0.0.1:{link}", f"127.0.0.1:{fleet}", str(files.ca.resolve()), purpose,
                  dataset, {}, "starting")
    state.write(files.state)
    fedgov = [sys.executable, "-m", "cli"]
    env = dict(os.environ)

    def start(name: str, args: list[str], child_env: dict[str, str]) -> subprocess.Popen:
        with open(files.logs / f"{name}.log", "ab") as out:
            return subprocess.Popen(fedgov + args, env=child_env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=files.root, preexec_fn=parent_death_signal())

    joins: dict[str, subprocess.Popen] = {}
    try:
        with guarded(env, grace=20.0) as children, _nodes_stopped_first(joins):
            coordinator = start("coordinator", ["server", "start", "--certs", str(files.certs), "--listen",
                                                f"127.0.0.1:{fleet}", "--link-port", str(link), "--workspace",
                                                str(workspace)], env)
            children.append(coordinator)
            _wait_for_line(files.logs / "coordinator.log", "coordinator up", coordinator, "the coordinator")
            say(f"coordinator up: nodes connect to https://127.0.0.1:{fleet}, the Control API is "
                f"https://127.0.0.1:{link} (pid {coordinator.pid})")
            registered = _register_and_consent(workspace, files, nodes, state, purpose, say)
            state = State(**{**state.__dict__, "nodes": registered})
            state.write(files.state)
            node_env, _ = split_secrets(env)  # a node holds no ledger secret
            offsets = {n: _size(files.logs / f"{n}.log") for n in nodes}
            for node_id in nodes:
                joins[node_id] = start(node_id, ["node", "join", "--dir", str(files.node(node_id)), "--superlink",
                                                 f"127.0.0.1:{fleet}", "--ca", str(files.ca), "--runtime-port",
                                                 str(free_port())], node_env)
                children.append(joins[node_id])
            say(f"{len(nodes)} nodes started; waiting until each is connected")
            _wait_connected(coordinator, joins, offsets, files)
            state = State(**{**state.__dict__, "phase": "up"})
            state.write(files.state)
            say("federation up")
            _watch(state, coordinator, joins, files, say)
    except FedgovError as err:
        State(**{**state.__dict__, "phase": "failed", "error": str(err)}).write(files.state)
        raise
    finally:
        current = State.read(files.state)
        if current is not None and current.phase != "failed":
            files.state.unlink(missing_ok=True)


@contextmanager
def _nodes_stopped_first(joins: dict[str, subprocess.Popen], grace: float = 20.0) -> Iterator[None]:
    """On the way out, stop the nodes while the coordinator still runs: each SuperNode then says goodbye, and
    the next `up` finds no earlier session the coordinator still counts (it would refuse the node for a minute)."""
    try:
        yield
    finally:
        from fedgov.interrupts import ignore_further

        ignore_further()
        running = [join for join in joins.values() if join.poll() is None]
        for join in running:
            join.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for join in running:
            try:
                join.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass  # `guarded` ends it


def _wait_for_line(log: Path, text: str, process: subprocess.Popen, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in (log.read_text(errors="replace") if log.exists() else ""):
        if process.poll() is not None:
            raise FederationFailed(f"{what} exited with code {process.returncode}: {_last_line(log)} (log: {log})")
        if time.monotonic() > deadline:
            raise FederationFailed(f"{what} was not up within {timeout:g} s (log: {log})")
        time.sleep(0.2)


def _register_and_consent(workspace: Path, files: FederationFiles, nodes: list[str], state: State, purpose: str,
                          say: Callable[[str], None]) -> dict[str, dict]:
    """Register each node not yet in the ledger (Flower and ledger, both or neither); grant consent where none."""
    import getpass

    from deploy.node_files import Registration
    from deploy.registration import register
    from governance import consent_store
    from governance.clock import utc_now
    from governance.consent import ConsentRecord
    from governance.ledger import Ledger
    from governance.node_store import load_registry
    from governance.workspace import Workspace

    operator = getpass.getuser()
    registered: dict[str, dict] = {}
    with Ledger.open(Workspace.discover(workspace)) as ledger:
        known = load_registry(ledger)
        for node_id in nodes:
            if node_id not in known:
                registration = Registration.from_json((files.node(node_id) / "registration.json").read_bytes(),
                                                      node_id)
                register(ledger, registration, team_of(node_id), state.link, files.ca,
                         actor=f"{operator} (fedgov federation up)")
                say(f"registered {node_id} ({team_of(node_id)})")
        flower_ids = _flower_ids(ledger, nodes)
        records = consent_store.load_records(ledger).values()
        has_answer = {r.principal for r in records if r.purpose == purpose}  # a withdrawal stands
        missing = [ConsentRecord(
            record_id=consent_store.new_record_id(), principal=node_id, team=team_of(node_id), purpose=purpose,
            data_categories=["bundled-public-dataset"], privacy_notice_version="rehearsal-1",
            privacy_notice_hash=consent_store.notice_hash(NOTICE), collection_method="fedgov federation up",
            granted_at=utc_now()) for node_id in nodes if node_id not in has_answer]
        if missing:
            consent_store.grant(ledger, missing, actor=f"{operator} (automatic: fedgov federation up)")
            say(f"granted consent for {purpose!r} to {', '.join(r.principal for r in missing)}")
    for node_id in nodes:
        registered[node_id] = {"team": team_of(node_id), "flower_node_id": flower_ids[node_id]}
    return registered


def _flower_ids(ledger, nodes: list[str]) -> dict[str, str]:
    """Each node's Flower node id, from its `node.registered` entry."""
    from governance import entry_types as et

    ids: dict[str, str] = {}
    for entry in ledger.query(et.NODE_REGISTERED):
        payload = ledger.read_payload(entry)
        if payload.get("node_id") in nodes and payload.get("flower_node_id"):
            ids[payload["node_id"]] = str(payload["flower_node_id"])
    missing = [n for n in nodes if n not in ids]
    if missing:
        raise FederationFailed(f"the ledger registers {', '.join(missing)} without a Flower node id (registered "
                               "outside `fedgov node register`); use a fresh workspace for the rehearsal")
    return ids


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _wait_connected(coordinator: subprocess.Popen, joins: dict[str, subprocess.Popen], offsets: dict[str, int],
                    files: FederationFiles, timeout: float = UP_TIMEOUT) -> None:
    """Until each node's `fedgov node join` reports its SuperNode activated (the SuperLink's own "online"
    could still be an earlier session's, for up to a minute)."""
    deadline = time.monotonic() + timeout
    while True:
        _check(coordinator, joins, files)
        waiting = [node_id for node_id in joins if f"node {node_id}: connected to " not in
                   _read_from(files.logs / f"{node_id}.log", offsets[node_id])]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise FederationFailed(f"{', '.join(waiting)} did not connect within {timeout:g} s (logs in {files.logs})")
        time.sleep(0.5)


def _check_coordinator(coordinator: subprocess.Popen, files: FederationFiles) -> None:
    if coordinator.poll() is not None:
        raise FederationFailed(f"the coordinator exited with code {coordinator.returncode}: "
                               f"{_last_line(files.logs / 'coordinator.log')}")


def _check(coordinator: subprocess.Popen, joins: dict[str, subprocess.Popen], files: FederationFiles) -> None:
    _check_coordinator(coordinator, files)
    for node_id, join in joins.items():
        if join.poll() is not None:
            raise FederationFailed(f"node {node_id} exited with code {join.returncode}: "
                                   f"{_last_line(files.logs / f'{node_id}.log')}")


def _watch(state: State, coordinator: subprocess.Popen, joins: dict[str, subprocess.Popen], files: FederationFiles,
           say: Callable[[str], None]) -> None:
    """Until a signal: the coordinator's end ends the federation; a node's end is logged and recorded for `status`."""
    while True:
        _check_coordinator(coordinator, files)
        for node_id, join in joins.items():
            if not state.nodes[node_id].get("exited") and join.poll() is not None:
                why = f"exited with code {join.returncode}: {_last_line(files.logs / f'{node_id}.log')}"
                state.nodes[node_id]["exited"] = why
                state.write(files.state)
                say(f"node {node_id} {why}")
        time.sleep(0.5)
