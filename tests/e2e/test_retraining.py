"""Audited retraining end to end (issue 12, item 4): the retraining policy, a workspace to run `fedgov` in, and
SIGTERM to `fedgov monitor watch` during the retraining run it launched (on evidence written straight into the
ledger, so no simulation first).

That `fedgov monitor check` names the drift of a real simulation, that `fedgov monitor watch` launches exactly one
retraining run, and that the ledger links that run (run.started, lineage, PROV) to the monitor.trigger entry that
caused it, is checked on tests/e2e/test_monitoring.py's run (drift on 3 of its 9 judged nodes): one simulation
fewer.
"""

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
from tests.fedgov_command import MARK_VARIABLE, fedgov_argv, fedgov_env, run_fedgov
from tests.governance.monitor_evidence import DRIFTING, record_round, ten_nodes

pytestmark = pytest.mark.timeout(600)

POLICY = """cooldown = "1h"
[triggers]
accuracy_drop = 0.05
drift_share = 0.3
worst_node_below = 0.5
[retrain]
rounds = 1  # what is checked is that it runs, and is linked to its trigger: one round shows that
nodes = 4
purpose = "retraining"
out = "{out}/retrain-{{seq}}"
"""


class Federation:
    """A workspace in its own directory (as tests/e2e/test_governed_rounds.py's Run lays it out), and `fedgov` run
    in it, with the retraining policy beside it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = {"FLWR_HOME": str(tmp / "flwr"), "FEDGOV_HOME": str(tmp / "workspace")}
        self.policy = tmp / "policy.toml"
        self.policy.write_text(POLICY.format(out=tmp))

    def fedgov(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = run_fedgov(*args, cwd=self.tmp, env=self.env, timeout=timeout)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done

    def entries(self, entry_type: str) -> list[tuple]:
        with Ledger.open(Workspace.discover(self.tmp / "workspace")) as ledger:
            return [(e, ledger.read_payload(e)) for e in ledger.query(entry_type=entry_type)]


def test_sigterm_during_a_retraining_run_leaves_no_process_and_closes_the_run(tmp_path):
    """Evidence written directly (a fired drift-share), then SIGTERM to the watch once its child has started the run."""
    fed = Federation(tmp_path)
    fed.fedgov("audit", "init")
    with Ledger.open(Workspace.discover(tmp_path / "workspace")) as ledger:
        record_round(ledger, "run-0", 2, value=0.9, best=0.95, nodes=ten_nodes(), drifting=DRIFTING)
    fed.policy.write_text(POLICY.format(out=tmp_path).replace("rounds = 1 ", "rounds = 500 "))
    mark = uuid.uuid4().hex
    watch = subprocess.Popen(fedgov_argv("monitor", "watch", "--policy", str(fed.policy), "--interval", "1"),
                             cwd=tmp_path, env=fedgov_env({**fed.env, MARK_VARIABLE: mark}), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not fed.entries(et.RUN_STARTED):
        assert watch.poll() is None, watch.communicate()
        time.sleep(1)
    watch.send_signal(signal.SIGTERM)
    out, err = watch.communicate(timeout=120)
    assert watch.returncode == 143, out[-2000:] + err[-2000:]
    assert err.strip().splitlines()[-1] == "error: interrupted by SIGTERM"
    time.sleep(1)
    assert processes_marked(mark) == {}
    [(started, _)] = [(e, p) for e, p in fed.entries(et.RUN_STARTED)]
    [(_, finished)] = [(e, p) for e, p in fed.entries(et.RUN_FINISHED) if e.run_id == started.run_id]
    assert finished["status"] == "interrupted"
