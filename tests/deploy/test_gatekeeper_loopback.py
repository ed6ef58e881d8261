"""The gatekeeper against a real SuperLink and SuperNode (`--isolation process`), on loopback: an approved
app bundle runs; one the site did not approve never runs, and the coordinator gets the site's reason."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from deploy.gatekeeper import serve
from tests.deploy.superlink import BIN, free_port, running_superlink
from governance.ledger import create_workspace
from tests.fedgov_command import PASSPHRASE, run_fedgov

PROBE = Path(__file__).resolve().parents[1] / "data" / "probe_app"
pytestmark = pytest.mark.timeout(240)


def _fab() -> bytes:
    from flwr.cli.build import build_fab_from_disk

    return build_fab_from_disk(PROBE)


def _policy(path: Path, approved: list[str]) -> None:
    path.write_text(f'[policy]\npurposes = ["triage model"]\napp_hashes = {json.dumps(approved)}\nmax_rounds = 5\n'
                    "max_update_bytes = 1000000\nmin_dp_noise_multiplier = 0.0\n")


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory):
    """A SuperLink, one registered node with its SuperNode in process isolation, and its gatekeeper."""
    root = tmp_path_factory.mktemp("loopback")
    with running_superlink(root / "coordinator") as link:
        assert run_fedgov("node", "init", "radiology", "--out", str(root / "node")).returncode == 0
        ws = create_workspace(root / "coordinator-ws" / ".fedgov", PASSPHRASE)
        registered = run_fedgov("node", "register", str(root / "node" / "registration.json"), "--team", "radiology",
                                "--superlink", link.address, "--ca", str(link.ca), "--workspace", str(ws.path))
        assert registered.returncode == 0, registered.stderr
        secret = root / "node" / "superexec.secret"
        secret.write_bytes(secrets.token_bytes(32))
        runtime = f"127.0.0.1:{free_port()}"
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               "FLWR_HOME": str(root / "node" / "flwr"), "FLWR_TELEMETRY_ENABLED": "0",
               "FLWR_DISABLE_UPDATE_CHECK": "1"}
        log = open(root / "supernode.log", "wb")
        node = subprocess.Popen(
            [str(BIN / "flower-supernode"), "--root-certificates", str(link.ca), "--superlink", link.address,
             "--auth-supernode-private-key", str(root / "node" / "radiology.auth"), "--isolation", "process",
             "--superexec-auth-secret-file", str(secret), "--port", runtime.rsplit(":", 1)[1]],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        stop = threading.Event()
        keeper = threading.Thread(target=_serve_when_up, args=(runtime, secret.read_bytes(), root / "node" / "policy.toml",
                                                               stop), daemon=True)
        keeper.start()
        try:
            yield link, root
        finally:
            stop.set()
            keeper.join(10)
            os.killpg(node.pid, signal.SIGTERM)
            try:
                node.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
            log.close()


def _serve_when_up(runtime: str, secret: bytes, site: Path, stop: threading.Event) -> None:
    while not stop.is_set():  # the SuperNode's Runtime API comes up a moment after the process
        try:
            serve(runtime, secret, site, stop)
        except Exception:  # noqa: BLE001 - not up yet; try again
            stop.wait(0.5)


def _run(link, out: Path, **config) -> list[dict]:
    from flwr.common.serde import fab_to_proto, user_config_to_proto
    from flwr.proto.control_pb2 import StartRunRequest
    from flwr.supercore.fab import Fab

    from deploy.registration import control_client

    fab = _fab()
    with control_client(link.address, link.ca) as client:
        client.StartRun(StartRunRequest(fab=fab_to_proto(Fab(hashlib.sha256(fab).hexdigest(), fab, {})),
                                        override_config=user_config_to_proto({"out": str(out), **config})))
    deadline = time.monotonic() + 150
    while not out.exists():
        assert time.monotonic() < deadline, "the probe run wrote no result"
        time.sleep(0.5)
    return json.loads(out.read_text())


def test_an_app_bundle_the_site_approved_runs(federation):
    link, root = federation
    _policy(root / "node" / "policy.toml", [hashlib.sha256(_fab()).hexdigest()])
    assert _run(link, root / "approved.json") == [{"reply": {"hello": "from the node's approved app"}}]


def test_an_app_bundle_the_site_did_not_approve_never_runs_and_the_coordinator_gets_the_reason(federation):
    link, root = federation
    _policy(root / "node" / "policy.toml", ["0" * 64])
    digest = hashlib.sha256(_fab()).hexdigest()
    assert _run(link, root / "refused.json") == [
        {"error": f"site policy: app bundle '{digest}' is not one this site approved"}]


def test_a_run_that_sends_more_training_than_it_declared_is_refused_beyond_it(federation):
    link, root = federation
    _policy(root / "node" / "policy.toml", [hashlib.sha256(_fab()).hexdigest()])
    assert _run(link, root / "more.json", instructions=2) == [
        {"reply": {"hello": "from the node's approved app"}},
        {"error": "site policy: this is the run's training instruction number 2, more than the 1 rounds it may have "
                  "here"}]


def test_a_task_process_stopped_by_sigterm_removes_the_app_directory_it_made(tmp_path: Path):
    """`node join` stopping ends its task processes with SIGTERM: each unwinds and removes what it unpacked."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.deploy.superlink import free_port

    env = {**os.environ, "TMPDIR": str(tmp_path), "FEDGOV_TASK_TOKEN": "t" * 64}
    task = subprocess.Popen([sys.executable, "-P", "-m", "deploy.gatekeeper", f"127.0.0.1:{free_port()}",
                             str(tmp_path / "policy.toml")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("fedgov-app-*")):  # made first, before the task is pulled (here: retried forever)
            assert task.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        task.send_signal(signal.SIGTERM)
        code = task.wait(30)
    finally:
        if task.poll() is None:  # only if the checks above failed: leave nothing running
            task.kill()
            task.wait()
    assert code == 143
    assert list(tmp_path.glob("fedgov-app-*")) == []
