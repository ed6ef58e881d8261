"""A node stopped mid-round on a real loopback federation: the run completes with the others, and the
ledger names the stopped node's dropout."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from governance import entry_types as et
from governance.ledger import Ledger
from governance.workspace import Workspace
from tests.deploy.federation import PURPOSE, loopback_federation
from tests.fedgov_command import MARK_VARIABLE, PASSPHRASE, fedgov_argv, fedgov_env

pytestmark = pytest.mark.timeout(420)


def test_a_node_stopped_mid_round_is_a_recorded_dropout_and_the_run_completes(tmp_path: Path):
    with loopback_federation(tmp_path, {"alpha": (PURPOSE,), "beta": (PURPOSE,), "gamma": (PURPOSE,)}) as federation:
        run = subprocess.Popen(fedgov_argv(*federation.run_args(PURPOSE, 3, 2)), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               env=fedgov_env({**federation.env, MARK_VARIABLE: federation.mark}))
        lines = []
        for line in run.stdout:  # the ServerApp's log, streamed: stop gamma as round 1 starts training
            lines.append(line)
            if "round 1/2: training" in line:
                federation.joins["gamma"].send_signal(signal.SIGTERM)
        assert run.wait(60) == 0, "".join(lines)[-3000:]
    with Ledger.open(Workspace.discover(tmp_path / "ws"), PASSPHRASE, write=False) as ledger:
        rejected = [ledger.read_payload(e) for e in ledger.query(et.ROUND_REJECTED)]
        replies = [ledger.read_payload(e) for e in ledger.query(et.ROUND_REPLY)]
    assert rejected and rejected[0]["node_id"] == "gamma" and "dropout" in rejected[0]["reason"], rejected
    assert {r["node_id"] for r in replies} == {"alpha", "beta"}
