"""A node stopped mid-round on a real loopback federation: the run completes with the others, and the
ledger names the stopped node's dropout."""

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
from tests.deploy.test_federation import PURPOSE, _background, _wait_for
from tests.deploy.test_node_join import site_file
from tests.deploy.test_server_start import make_certs
from tests.fedgov_command import MARK_VARIABLE, PASSPHRASE, fedgov_argv, fedgov_env, run_fedgov

pytestmark = pytest.mark.timeout(420)


def test_a_node_stopped_mid_round_is_a_recorded_dropout_and_the_run_completes(tmp_path: Path):
    root, mark = tmp_path, f"dropout-{uuid.uuid4().hex}"
    ws_env = {"FEDGOV_HOME": str(root / "ws")}
    assert run_fedgov("audit", "init", env=ws_env).returncode == 0
    certs = make_certs(root)
    fleet, link = free_port(), free_port()
    processes = [_background(["server", "start", "--certs", str(certs), "--listen", f"127.0.0.1:{fleet}",
                              "--link-port", str(link)], root / "server.out", mark, root)]
    joins = {}
    try:
        _wait_for(root / "server.out", "coordinator up", processes[0])
        app_hash = run_fedgov("app", "hash").stdout.strip()
        for name in ("alpha", "beta", "gamma"):
            node = root / name
            assert run_fedgov("node", "init", name, "--out", str(node)).returncode == 0
            site_file(node, [app_hash])
            assert run_fedgov("node", "register", str(node / "registration.json"), "--team", name, "--superlink",
                              f"127.0.0.1:{link}", "--ca", str(certs / "ca.crt"), env=ws_env).returncode == 0
            assert run_fedgov("consent", "grant", "--node", name, "--team", name, "--purpose", PURPOSE,
                              "--data-category", "imaging", "--notice-version", "1", "--notice-hash", "a" * 64,
                              env=ws_env).returncode == 0
            joins[name] = _background(["node", "join", "--dir", str(node), "--superlink", f"127.0.0.1:{fleet}",
                                       "--ca", str(certs / "ca.crt"), "--runtime-port", str(free_port())],
                                      root / f"{name}.out", mark, root)
            processes.append(joins[name])
        run = subprocess.Popen(fedgov_argv("run", "--purpose", PURPOSE, "--superlink", f"127.0.0.1:{link}", "--ca",
                                           str(certs / "ca.crt"), "--nodes", "3", "--rounds", "2"),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=fedgov_env({**ws_env, MARK_VARIABLE: mark}))
        lines = []
        for line in run.stdout:  # the ServerApp's log, streamed: stop gamma as round 1 starts training
            lines.append(line)
            if "round 1/2: training" in line:
                joins["gamma"].send_signal(signal.SIGTERM)
        assert run.wait(60) == 0, "".join(lines)[-3000:]
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(60)
    time.sleep(0.5)
    assert processes_marked(mark) == {}
    with Ledger.open(Workspace.discover(root / "ws"), PASSPHRASE, write=False) as ledger:
        rejected = [ledger.read_payload(e) for e in ledger.query(et.ROUND_REJECTED)]
        replies = [ledger.read_payload(e) for e in ledger.query(et.ROUND_REPLY)]
    assert [(r["node_id"], r["reason"].split(":")[0]) for r in rejected][:1] in (
        [("gamma", "node error 5")], [("gamma", "dropout")]), rejected
    assert "dropout" in rejected[0]["reason"]
    assert {r["node_id"] for r in replies} == {"alpha", "beta"}
