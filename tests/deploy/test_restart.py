"""The coordinator restarts between runs: its SuperLink keeps who is registered, the nodes reconnect by
themselves, the next run completes, and the ledger has lost nothing."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from governance import entry_types as et
from governance.ledger import Ledger
from governance.workspace import Workspace
from tests.deploy.federation import PURPOSE, loopback_federation
from tests.fedgov_command import PASSPHRASE, run_fedgov

pytestmark = pytest.mark.timeout(420)


def test_a_restarted_coordinator_loses_nothing_and_its_nodes_come_back(tmp_path: Path):
    with loopback_federation(tmp_path, {"alpha": (PURPOSE,), "beta": (PURPOSE,)}) as federation:
        first = run_fedgov(*federation.run_args(PURPOSE, 2, 1), env=federation.env, timeout=240)
        assert first.returncode == 0, first.stdout[-2000:] + first.stderr
        with Ledger.open(Workspace.discover(tmp_path / "ws"), PASSPHRASE, write=False) as ledger:
            before = ledger.size()
        server = federation.processes[0]
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 143
        federation.start_server()  # same workspace, same SuperLink database
        second = run_fedgov(*federation.run_args(PURPOSE, 2, 1), "--wait", "120", env=federation.env, timeout=300)
        assert second.returncode == 0, second.stdout[-2000:] + second.stderr
    with Ledger.open(Workspace.discover(tmp_path / "ws"), PASSPHRASE, write=False) as ledger:
        runs = [ledger.read_payload(e)["status"] for e in ledger.query(et.RUN_FINISHED)]
        assert ledger.size() > before
    assert runs == ["finished", "finished"]
    for node in ("alpha", "beta"):  # what `fedgov node join` told its operator meanwhile
        said = [line for line in (tmp_path / f"{node}.out").read_text().splitlines() if line.startswith(f"node {node}:")]
        assert said[1].startswith(f"node {node}: connected to 127.0.0.1:{federation.fleet} (Flower node id ")
        assert f"node {node}: lost the connection to 127.0.0.1:{federation.fleet}; the SuperNode retries by itself" \
            in said
        assert said.index(f"node {node}: connected to 127.0.0.1:{federation.fleet} again") > \
            said.index(f"node {node}: lost the connection to 127.0.0.1:{federation.fleet}; the SuperNode retries by itself")
    assert run_fedgov("audit", "verify", "--require-signed", env={"FEDGOV_HOME": str(tmp_path / "ws")}).returncode == 0
