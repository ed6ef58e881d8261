"""`fedgov federation up|status|down`: a rehearsal of a real federation on loopback, in separate processes.

One `up` with three nodes serves the module: each node has its own keys and its own CSV, all are
registered and hold consent, `status` shows them connected, a governed `fedgov run` against it
completes and verifies, and `down` stops exactly the processes `up` started.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from deploy.federation import DEFAULT_PURPOSE
from governance import entry_types as et
from governance.consent import VALID, find_valid_consent, records_by_principal
from governance.consent_store import load_records
from governance.ledger import Ledger
from governance.workspace import Workspace
from tests.conftest import processes_marked
from tests.fedgov_command import MARK_VARIABLE, PASSPHRASE, fedgov_argv, fedgov_env, run_fedgov

pytestmark = pytest.mark.timeout(300)
NODES = ["site-01", "site-02", "site-03"]


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("rehearsal")
    mark = f"rehearsal-{uuid.uuid4().hex}"
    env = {"FEDGOV_HOME": str(root / ".fedgov"), MARK_VARIABLE: mark}
    up = run_fedgov("federation", "up", "--nodes", "3", env=env, timeout=240)
    try:
        status = run_fedgov("federation", "status", env=env)
        again = run_fedgov("federation", "up", "--nodes", "3", env=env)
        run = run_fedgov("run", "--purpose", DEFAULT_PURPOSE, "--nodes", "3", "--rounds", "1", env=env, timeout=240)
        alive = {word: len(processes_marked(mark, (word,))) for word in (
            "federation serve", "server start --certs", "--enable-supernode-auth", "node join --dir",
            "--auth-supernode-private-key")}
    finally:
        down = run_fedgov("federation", "down", env=env, timeout=120)
    time.sleep(0.5)
    left = processes_marked(mark)
    try:  # once more: the same keys, registrations and consent; every node connects at once
        reup = run_fedgov("federation", "up", "--nodes", "3", env=env, timeout=240)
        restatus = run_fedgov("federation", "status", env=env)
    finally:
        redown = run_fedgov("federation", "down", env=env, timeout=120)
    time.sleep(0.5)
    yield root / ".fedgov", {"up": up, "status": status, "again": again, "run": run, "down": down, "reup": reup,
                             "restatus": restatus, "redown": redown}, alive, (mark, left)


def test_up_returns_once_every_node_is_connected(federation):
    _, results, _, _ = federation
    up = results["up"]
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-2000:]
    assert "federation up: 3 nodes connected" in up.stdout


def test_up_starts_a_coordinator_and_one_node_join_per_node_in_separate_processes(federation):
    _, _, alive, _ = federation
    assert alive == {"federation serve": 1, "server start --certs": 1, "--enable-supernode-auth": 1,
                     "node join --dir": 3, "--auth-supernode-private-key": 3}


def test_each_node_has_its_own_private_keys_and_its_own_csv(federation):
    ws, _, _, _ = federation
    csvs = set()
    for node in NODES:
        directory = ws / "federation" / "nodes" / node
        for key in ("node.key", f"{node}.auth"):
            assert stat.S_IMODE((directory / key).stat().st_mode) == 0o600
        rows = (directory / "data.csv").read_text().splitlines()
        assert len(rows) > 10
        csvs.add("\n".join(rows[1:]))
    assert len(csvs) == 3  # a Dirichlet split: three different shares
    assert stat.S_IMODE((ws / "federation" / "certs" / "ca.key").stat().st_mode) == 0o600


def test_every_node_is_registered_with_its_flower_id_and_holds_consent_for_the_purpose(federation):
    ws, _, _, _ = federation
    with Ledger.open(Workspace.discover(ws), PASSPHRASE, write=False) as ledger:
        registered = {p["node_id"]: p for p in map(ledger.read_payload, ledger.query(et.NODE_REGISTERED))}
        by_principal = records_by_principal(load_records(ledger).values())
    assert sorted(registered) == NODES
    assert all(p["flower_node_id"] and p["auth_key_sha256"] for p in registered.values())
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    assert all(find_valid_consent(by_principal[n], n, DEFAULT_PURPOSE, now).state == VALID for n in NODES)


def test_status_shows_each_node_connected(federation):
    _, results, _, _ = federation
    status = results["status"]
    assert status.returncode == 0, status.stderr
    rows = [line for line in status.stdout.splitlines() if line.startswith("│ site-")]
    assert [row.split("│")[1].strip() for row in rows] == NODES
    assert all(row.split("│")[4].strip() == "connected" for row in rows)


def test_a_second_up_on_the_same_workspace_is_refused_in_one_line(federation):
    _, results, _, _ = federation
    again = results["again"]
    assert again.returncode == 2
    assert again.stderr.startswith("error: a federation is already up in ") and again.stderr.count("\n") == 1


def test_a_governed_run_against_it_completes_and_the_ledger_verifies(federation):
    ws, results, _, _ = federation
    run = results["run"]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.stdout.splitlines()[-1].endswith("completed")
    with Ledger.open(Workspace.discover(ws), PASSPHRASE, write=False) as ledger:
        replies = [ledger.read_payload(e) for e in ledger.query(et.ROUND_REPLY)]
    assert sorted(r["node_id"] for r in replies) == NODES and all(r["signature"] for r in replies)
    assert run_fedgov("audit", "verify", "--require-signed", env={"FEDGOV_HOME": str(ws)}).returncode == 0


def test_down_stops_exactly_the_processes_up_started(federation):
    ws, results, _, (mark, left) = federation
    down = results["down"]
    assert down.returncode == 0, down.stderr
    assert down.stdout.startswith("federation down: the coordinator and 3 nodes stopped")
    assert left == {}
    assert processes_marked(mark) == {}
    status = run_fedgov("federation", "status", env={"FEDGOV_HOME": str(ws)})
    assert (status.returncode, status.stderr) == (2, f"error: no federation is running in {ws}; start one with "
                                                     "`fedgov federation up`\n")


def test_a_second_up_reuses_the_nodes_and_each_connects_at_once(federation):
    ws, results, _, _ = federation
    reup = results["reup"]
    assert reup.returncode == 0, reup.stdout[-3000:] + reup.stderr[-2000:]
    assert "registered site-" not in reup.stdout and "granted consent" not in reup.stdout
    assert "refused the activation" not in (ws / "federation" / "logs" / "site-01.log").read_text()
    assert results["restatus"].returncode == 0 and results["restatus"].stdout.count("│ connected │") == 3
    assert results["redown"].returncode == 0


def test_up_interrupted_before_the_nodes_connect_leaves_nothing_running(tmp_path: Path):
    mark = f"rehearsal-{uuid.uuid4().hex}"
    env = fedgov_env({"FEDGOV_HOME": str(tmp_path / ".fedgov"), MARK_VARIABLE: mark})
    up = subprocess.Popen(fedgov_argv("federation", "up", "--nodes", "2"), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    log = tmp_path / ".fedgov" / "federation" / "logs" / "federation.log"
    deadline = time.monotonic() + 120
    while "coordinator up" not in (log.read_text() if log.exists() else ""):
        assert up.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    up.send_signal(signal.SIGTERM)
    _, err = up.communicate(timeout=90)
    assert up.returncode == 143, err
    assert err == "error: interrupted by SIGTERM\n"
    time.sleep(0.5)
    assert processes_marked(mark) == {}
    assert not (tmp_path / ".fedgov" / "federation" / "federation.json").exists()


def test_down_with_no_federation_is_one_line(tmp_path: Path):
    assert run_fedgov("audit", "init", env={"FEDGOV_HOME": str(tmp_path)}).returncode == 0
    result = run_fedgov("federation", "down", env={"FEDGOV_HOME": str(tmp_path)})
    assert (result.returncode, result.stderr) == (2, f"error: no federation is running in {tmp_path}; start one with "
                                                     "`fedgov federation up`\n")
    assert not os.path.exists(tmp_path / "federation")
