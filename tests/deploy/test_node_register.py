"""`fedgov node init` on the node, `fedgov node register` at the coordinator: Flower and the ledger agree."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from governance.entry_types import NODE_REGISTERED
from governance.ledger import Ledger, create_workspace
from governance.workspace import Workspace
from tests.deploy.superlink import running_superlink
from tests.fedgov_command import PASSPHRASE, run_fedgov


@pytest.fixture(scope="module")
def superlink(tmp_path_factory: pytest.TempPathFactory):
    with running_superlink(tmp_path_factory.mktemp("superlink")) as link:
        yield link


@pytest.fixture
def coordinator(tmp_path: Path) -> Workspace:
    return create_workspace(tmp_path / "coordinator" / ".fedgov", PASSPHRASE)


def _init(tmp_path: Path, node_id: str) -> Path:
    result = run_fedgov("node", "init", node_id, "--out", str(tmp_path / node_id))
    assert result.returncode == 0, result.stderr
    return tmp_path / node_id


def _register(superlink, ws: Workspace, registration: Path, team: str = "radiology"):
    return run_fedgov("node", "register", str(registration), "--team", team, "--superlink", superlink.address,
                      "--ca", str(superlink.ca), "--workspace", str(ws.path), "--actor", "operator")


def _flower_nodes(superlink) -> dict[str, int]:
    from deploy.registration import control_client
    from flwr.proto.control_pb2 import ListNodesRequest

    with control_client(superlink.address, superlink.ca) as client:
        return {n.name: n.node_id for n in client.ListNodes(ListNodesRequest()).nodes_info}


def test_node_init_makes_the_keys_a_refusing_policy_and_a_public_registration(tmp_path: Path):
    node = _init(tmp_path, "radiology")
    assert sorted(p.name for p in node.iterdir()) == ["node.key", "policy.toml", "radiology.auth",
                                                       "radiology.auth.pub", "registration.json"]
    assert {oct(os.stat(node / f).st_mode & 0o777) for f in ("node.key", "radiology.auth")} == {"0o600"}
    from client.policy import SitePolicy

    policy = SitePolicy.load(node / "policy.toml")
    assert policy.check_run(purpose="anything", app_hash="a" * 64, rounds=1) is not None  # refuses until filled in
    registration = json.loads((node / "registration.json").read_text())
    assert sorted(registration) == ["auth_key", "format", "node_id", "signing_key"]  # public keys only


def test_a_registered_node_is_in_flowers_registry_and_in_the_ledger(superlink, coordinator: Workspace, tmp_path: Path):
    node = _init(tmp_path, "cardiology")
    result = _register(superlink, coordinator, node / "registration.json", team="cardiology")
    assert result.returncode == 0, result.stderr
    flower_id = _flower_nodes(superlink)["cardiology"]
    assert result.stdout.strip() == (f"registered node cardiology (team cardiology): Flower node id {flower_id}, "
                                     "signing key recorded in the ledger")
    with Ledger.open(coordinator, PASSPHRASE, write=False) as ledger:
        [entry] = ledger.query(entry_type=NODE_REGISTERED)
        payload = ledger.read_payload(entry)
    signing = json.loads((node / "registration.json").read_text())["signing_key"]
    assert (payload["node_id"], payload["team"], payload["public_key"], payload["flower_node_id"]) == (
        "cardiology", "cardiology", signing, str(flower_id))
    assert run_fedgov("audit", "verify", "--workspace", str(coordinator.path)).returncode == 0


def test_the_coordinator_knows_a_registered_auth_key_in_the_bytes_a_supernode_sends(superlink, coordinator: Workspace,
                                                                                   tmp_path: Path):
    """What the Fleet proxy asks when Flower refuses an activation (deploy/fleet_proxy.py): a registered key must be
    found in the exact bytes flower-supernode puts in its header, or a registered node would be told it is not."""
    from cryptography.hazmat.primitives.serialization import load_ssh_private_key
    from flwr.supercore.primitives.asymmetric import public_key_to_bytes

    from deploy.coordinator import key_registered

    def as_sent(node: Path, name: str) -> bytes:  # as flower-supernode loads --auth-supernode-private-key
        return public_key_to_bytes(load_ssh_private_key((node / f"{name}.auth").read_bytes(), None).public_key())

    known, stranger = _init(tmp_path, "dermatology"), _init(tmp_path, "stranger")
    assert _register(superlink, coordinator, known / "registration.json").returncode == 0
    assert key_registered(superlink.address, superlink.ca, as_sent(known, "dermatology")) is True
    assert key_registered(superlink.address, superlink.ca, as_sent(stranger, "stranger")) is False
    assert key_registered("127.0.0.1:1", superlink.ca, as_sent(known, "dermatology")) is None  # cannot ask: None


def test_a_node_registered_twice_is_refused_and_nothing_changes(superlink, coordinator: Workspace, tmp_path: Path):
    node = _init(tmp_path, "oncology")
    assert _register(superlink, coordinator, node / "registration.json").returncode == 0
    again = _register(superlink, coordinator, node / "registration.json")
    assert (again.returncode, again.stderr) == (2, "error: node oncology is already registered in this ledger (team "
                                                   "radiology); a node id is registered once\n")


def test_an_auth_key_flower_already_knows_is_refused_and_the_ledger_is_untouched(superlink, coordinator: Workspace,
                                                                               tmp_path: Path):
    node = _init(tmp_path, "neurology")
    other = create_workspace(tmp_path / "other" / ".fedgov", PASSPHRASE)
    assert _register(superlink, other, node / "registration.json").returncode == 0  # Flower now holds this key
    result = _register(superlink, coordinator, node / "registration.json")
    assert result.returncode == 1 and result.stderr.startswith("error: the SuperLink refused to register the node: ")
    with Ledger.open(coordinator, PASSPHRASE, write=False) as ledger:
        assert ledger.query(entry_type=NODE_REGISTERED) == []


def test_an_unreachable_superlink_is_one_line(coordinator: Workspace, tmp_path: Path, superlink):
    node = _init(tmp_path, "pathology")
    result = run_fedgov("node", "register", str(node / "registration.json"), "--team", "t", "--superlink",
                        "127.0.0.1:1", "--ca", str(superlink.ca), "--workspace", str(coordinator.path))
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach the SuperLink to register the node (")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("content,line", [
    (b"not json", "is not JSON; it is the registration.json `fedgov node init` wrote"),
    (b'{"format": "x"}', "is not a fedgov.node-registration.v1 file (made by `fedgov node init`)"),
    (b"[" * 10000, "is more than 4096 bytes; a node registration is a few hundred"),
])
def test_a_bad_registration_file_is_one_line(coordinator: Workspace, tmp_path: Path, content: bytes, line: str,
                                             superlink):
    path = tmp_path / "registration.json"
    path.write_bytes(content)
    result = _register(superlink, coordinator, path)
    assert (result.returncode, result.stderr) == (2, f"error: {path} {line}\n")


def test_the_superlink_helper_leaves_nothing_running(tmp_path: Path):
    with running_superlink(tmp_path) as link:
        pid = link.process.pid
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, signal.SIGCONT)  # no process of its group (the SuperLink, its SuperExec) is left


def test_without_superlink_it_registers_with_the_coordinator_running_on_the_workspace(superlink, coordinator: Workspace,
                                                                                     tmp_path: Path):
    node = _init(tmp_path, "oncology")
    state = coordinator.path / "coordinator"
    state.mkdir()
    # what `fedgov server start` writes while it runs (deploy/coordinator.py _write_info); this process stands in
    # for its pid, which must be alive
    (state / "coordinator.json").write_text(json.dumps({"pid": os.getpid(), "superlink": superlink.address,
                                                        "fleet": "127.0.0.1:1", "ca": str(superlink.ca),
                                                        "database": "unused"}))
    result = run_fedgov("node", "register", str(node / "registration.json"), "--team", "oncology", "--workspace",
                        str(coordinator.path))
    assert result.returncode == 0, result.stderr
    assert "oncology" in _flower_nodes(superlink)


def test_without_superlink_and_no_coordinator_running_it_is_one_line(coordinator: Workspace, tmp_path: Path):
    node = _init(tmp_path, "dermatology")
    result = run_fedgov("node", "register", str(node / "registration.json"), "--team", "t", "--workspace",
                        str(coordinator.path))
    assert (result.returncode, result.stderr) == (2, f"error: no coordinator is running on {coordinator.path / 'coordinator'}"
                                                     "; give --superlink and --ca, or start it with `fedgov server "
                                                     "start` (or `fedgov federation up`)\n")
