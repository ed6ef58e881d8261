"""A real federation on loopback, driven by the commands a person types: a coordinator (`fedgov server start`),
three team nodes (`fedgov node init`, `register`, `consent grant`, `node join`), each with its own CSV, and a
governed run (`fedgov run`). Two nodes train; the third's own policy forbids the run's purpose, and its refusal
is in the ledger. Afterwards the ledger verifies and nothing is left running."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from governance import entry_types as et
from governance.ledger import Ledger
from governance.workspace import Workspace
from tests.conftest import processes_marked
from tests.deploy.superlink import free_port
from tests.deploy.test_node_join import site_file
from tests.deploy.test_server_start import make_certs
from tests.fedgov_command import MARK_VARIABLE, PASSPHRASE, fedgov_argv, fedgov_env, run_fedgov

pytestmark = pytest.mark.timeout(420)
PURPOSE = "triage model"
NODES = {"radiology": (PURPOSE,), "cardiology": (PURPOSE,), "marketing-dept": ("marketing",)}


def _background(args: list[str], out: Path, mark: str, cwd: Path) -> subprocess.Popen:
    with open(out, "w") as sink:
        return subprocess.Popen(fedgov_argv(*args), stdout=sink, stderr=subprocess.STDOUT,
                                env=fedgov_env({MARK_VARIABLE: mark, "FEDGOV_HOME": str(cwd / "ws")}), cwd=cwd)


def _wait_for(path: Path, text: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text() if path.exists() else ""):
        assert process.poll() is None and time.monotonic() < deadline, path.read_text()[-3000:]
        time.sleep(0.2)


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("federation")
    mark = f"federation-{uuid.uuid4().hex}"
    ws_env = {"FEDGOV_HOME": str(root / "ws")}
    assert run_fedgov("audit", "init", env=ws_env).returncode == 0
    certs = make_certs(root)
    fleet, link = free_port(), free_port()
    processes = [_background(["server", "start", "--certs", str(certs), "--listen", f"127.0.0.1:{fleet}",
                              "--link-port", str(link)], root / "server.out", mark, root)]
    try:
        _wait_for(root / "server.out", "coordinator up", processes[0])
        app_hash = run_fedgov("app", "hash").stdout.strip()
        for name, purposes in NODES.items():
            node = root / name
            assert run_fedgov("node", "init", name, "--out", str(node)).returncode == 0
            site_file(node, [app_hash], purposes)
            registered = run_fedgov("node", "register", str(node / "registration.json"), "--team", name,
                                    "--superlink", f"127.0.0.1:{link}", "--ca", str(certs / "ca.crt"), env=ws_env)
            assert registered.returncode == 0, registered.stderr
            granted = run_fedgov("consent", "grant", "--node", name, "--team", name, "--purpose", PURPOSE,
                                 "--data-category", "imaging", "--notice-version", "1", "--notice-hash", "a" * 64,
                                 env=ws_env)
            assert granted.returncode == 0, granted.stderr
            processes.append(_background(["node", "join", "--dir", str(node), "--superlink", f"127.0.0.1:{fleet}",
                                          "--ca", str(certs / "ca.crt"), "--runtime-port", str(free_port())],
                                         root / f"{name}.out", mark, root))
        run = run_fedgov("run", "--purpose", PURPOSE, "--superlink", f"127.0.0.1:{link}", "--ca",
                         str(certs / "ca.crt"), "--nodes", "3", "--rounds", "2", "--wait", "120", env=ws_env,
                         timeout=360)
        refused = run_fedgov("run", "--purpose", "marketing", "--superlink", f"127.0.0.1:{link}", "--ca",
                             str(certs / "ca.crt"), "--nodes", "3", "--rounds", "1", env=ws_env, timeout=240)
        yield root, run, refused
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = [process.wait(60) for process in processes]
        assert codes == [143] * len(processes), codes
        time.sleep(0.5)
        assert processes_marked(mark) == {}


def _ledger(root: Path) -> Ledger:
    return Ledger.open(Workspace.discover(root / "ws"), PASSPHRASE, write=False)


def test_the_run_completes_and_says_so(federation):
    _, run, _ = federation
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.stdout.splitlines()[-1].endswith("completed")


def test_each_consenting_node_that_allows_the_purpose_sent_a_signed_update_every_round(federation):
    root, _, _ = federation
    with _ledger(root) as ledger:
        replies = [ledger.read_payload(e) for e in ledger.query(et.ROUND_REPLY)]
    by_node = sorted(r["node_id"] for r in replies)
    assert by_node == ["cardiology", "cardiology", "radiology", "radiology"]
    assert all(r["signature"] and r["dataset_fingerprint"]["rows"] == 32 for r in replies)  # 80 % of 40 own rows


def test_the_node_whose_policy_forbids_the_purpose_refused_and_the_refusal_is_recorded(federation):
    root, _, _ = federation
    with _ledger(root) as ledger:
        rejected = [ledger.read_payload(e) for e in ledger.query(et.ROUND_REJECTED)]
    assert {r["node_id"] for r in rejected} == {"marketing-dept"}
    assert all("site policy: purpose 'triage model' is not one this site allows" in r["reason"] for r in rejected)


def test_the_ledger_verifies_afterwards(federation):
    root, _, _ = federation
    assert run_fedgov("audit", "verify", "--require-signed", env={"FEDGOV_HOME": str(root / "ws")}).returncode == 0


def test_a_run_no_node_consented_to_fails_in_one_line_with_the_reason(federation):
    _, _, refused = federation
    assert refused.returncode == 1, refused.stdout[-2000:]
    assert refused.stderr.startswith("error: run ") and refused.stderr.count("\n") == 1, refused.stderr
    assert "consent" in refused.stderr, refused.stderr
