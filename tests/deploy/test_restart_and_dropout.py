"""Two faults on one loopback federation of three nodes (alpha, beta, gamma), in this order:

1. the coordinator restarts between runs: its SuperLink keeps who is registered, the nodes reconnect by
   themselves, the next run completes, and the ledger has lost nothing;
2. a node (gamma) is stopped mid-round: the run completes with the others, and the ledger names the stopped
   node's dropout.

One federation serves both (a second one cost a coordinator and nodes enrolled again: ~20 s of the suite's
two cores); each test reads only its own runs' ledger entries. The dropout test stops gamma, so it comes last.
On leaving, `loopback_federation` checks that every process exits as asked and none is left.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from governance import entry_types as et
from governance.ledger import Ledger
from governance.workspace import Workspace
from tests.deploy.federation import PURPOSE, loopback_federation
from tests.fedgov_command import MARK_VARIABLE, PASSPHRASE, fedgov_argv, fedgov_env, run_fedgov

pytestmark = pytest.mark.timeout(420)
NODES = ("alpha", "beta", "gamma")


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory):
    with loopback_federation(tmp_path_factory.mktemp("faults"), {name: (PURPOSE,) for name in NODES}) as federation:
        yield federation


def _ledger(root: Path) -> Ledger:
    return Ledger.open(Workspace.discover(root / "ws"), PASSPHRASE, write=False)


def _run_ids(root: Path) -> set[str]:
    with _ledger(root) as ledger:
        return {e.run_id for e in ledger.query(et.RUN_STARTED)}


def test_a_restarted_coordinator_loses_nothing_and_its_nodes_come_back(federation):
    root = federation.root
    earlier = _run_ids(root)
    first = run_fedgov(*federation.run_args(PURPOSE, len(NODES), 1), env=federation.env, timeout=240)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr
    with _ledger(root) as ledger:
        before = ledger.size()
    server = federation.processes[0]
    server.send_signal(signal.SIGTERM)
    assert server.wait(60) == 143
    federation.start_server()  # same workspace, same SuperLink database
    second = run_fedgov(*federation.run_args(PURPOSE, len(NODES), 1), "--wait", "120", env=federation.env,
                        timeout=300)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr
    with _ledger(root) as ledger:
        runs = [ledger.read_payload(e)["status"] for e in ledger.query(et.RUN_FINISHED) if e.run_id not in earlier]
        assert ledger.size() > before
    assert runs == ["finished", "finished"]
    for node in NODES:  # what `fedgov node join` told its operator meanwhile
        said = [line for line in (root / f"{node}.out").read_text().splitlines() if line.startswith(f"node {node}:")]
        lost = f"node {node}: lost the connection to 127.0.0.1:{federation.fleet}; the SuperNode retries by itself"
        assert said[1].startswith(f"node {node}: connected to 127.0.0.1:{federation.fleet} (Flower node id ")
        assert lost in said
        assert said.index(f"node {node}: connected to 127.0.0.1:{federation.fleet} again") > said.index(lost)
    assert run_fedgov("audit", "verify", "--require-signed", env=federation.env).returncode == 0


def test_a_node_stopped_mid_round_is_a_recorded_dropout_and_the_run_completes(federation):
    root = federation.root
    earlier = _run_ids(root)
    run = subprocess.Popen(fedgov_argv(*federation.run_args(PURPOSE, len(NODES), 2)), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True,
                           env=fedgov_env({**federation.env, MARK_VARIABLE: federation.mark}))
    lines = []
    for line in run.stdout:  # the ServerApp's log, streamed: stop gamma as round 1 starts training
        lines.append(line)
        if "round 1/2: training" in line:
            federation.joins["gamma"].send_signal(signal.SIGTERM)
    assert run.wait(60) == 0, "".join(lines)[-3000:]
    assert federation.joins["gamma"].wait(60) == 143
    [run_id] = _run_ids(root) - earlier
    with _ledger(root) as ledger:
        rejected = [ledger.read_payload(e) for e in ledger.query(et.ROUND_REJECTED, run_id=run_id)]
        replies = [ledger.read_payload(e) for e in ledger.query(et.ROUND_REPLY, run_id=run_id)]
    assert rejected and rejected[0]["node_id"] == "gamma" and "dropout" in rejected[0]["reason"], rejected
    assert {r["node_id"] for r in replies} == {"alpha", "beta"}
