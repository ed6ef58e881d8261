"""Audited retraining end to end (issue 12, item 4): drift on 30 % of nodes in a real Flower simulation,
`fedgov monitor check` names it, `fedgov monitor watch` launches exactly one retraining run, and the
ledger links that run (run.started, lineage, PROV) to the monitor.trigger entry that caused it.
"""

from __future__ import annotations

import json
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

DRIFTED = ("sim-0001", "sim-0004", "sim-0008")  # 30 % of 10 nodes, shifted from round 2 on
POLICY = """cooldown = "1h"
[triggers]
accuracy_drop = 0.05
drift_share = 0.3
worst_node_below = 0.5
[retrain]
rounds = 2
nodes = 4
purpose = "retraining"
out = "{out}/retrain-{{seq}}"
"""


class Federation:
    """A workspace in its own directory, and `fedgov` run in it."""

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


@pytest.fixture(scope="module")
def drifted(tmp_path_factory) -> tuple[Federation, str]:
    """10 nodes x 3 rounds on breast-cancer, sim-0001, sim-0004 and sim-0008's data shifted from round 2; 5 bins per
    feature, so a node's ~37 rows fill most bins above the minimum count (as tests/e2e/test_monitoring.py)."""
    fed = Federation(tmp_path_factory.mktemp("retraining"))
    fed.fedgov("sim", "run", "--nodes", "10", "--rounds", "3", "--out", str(fed.tmp / "run"), "--monitor-bins", "5",
               "--drift", ",".join(f"{n}@2" for n in DRIFTED))
    return fed, json.loads((fed.tmp / "run" / "rounds.json").read_text())["run_id"]


@pytest.fixture(scope="module")
def watched(drifted) -> tuple[Federation, str, subprocess.CompletedProcess[str]]:
    """`fedgov monitor watch` over the drifted run: the first check retrains, the second is held."""
    fed, run_id = drifted
    done = fed.fedgov("monitor", "watch", "--policy", str(fed.policy), "--run", run_id, "--interval", "1",
                      "--max-checks", "2")
    return fed, run_id, done


def test_check_names_the_drifting_nodes_and_features(drifted):
    fed, run_id = drifted
    done = fed.fedgov("monitor", "check", "--policy", str(fed.policy), "--run", run_id, "--format", "json")
    shown = json.loads(done.stdout)
    drift = next(t for t in shown["triggers"] if t["name"] == "drift-share")
    assert drift["fired"] and drift["statistic"] == 0.3 and drift["nodes"] == list(DRIFTED)
    assert all(drift["features"][node] for node in drift["nodes"])  # each named with its drifting features
    assert shown["decision"] == "no-retrain" and shown["evidence"]["run_id"] == run_id
    [(_, recorded)] = [(e, p) for e, p in fed.entries(et.MONITOR_TRIGGER) if e.seq == shown["seq"]]
    assert recorded["command"] == "check" and recorded["fired"] == ["drift-share"]
    table = fed.fedgov("monitor", "check", "--policy", str(fed.policy), "--run", run_id).stdout
    for node in drift["nodes"]:
        assert f"  {node}: {', '.join(drift['features'][node])}" in table


def test_watch_launches_exactly_one_retraining_run_and_holds_the_second_check(watched):
    fed, run_id, done = watched
    assert done.stdout.count("launching the retraining run") == 1
    watch_entries = [p for _, p in fed.entries(et.MONITOR_TRIGGER) if p["command"] == "watch"]
    assert [p["decision"] for p in watch_entries] == ["retrain", "no-retrain"]
    assert watch_entries[1]["reason"].startswith("evidence already acted on")
    retraining = [p for _, p in fed.entries(et.RUN_STARTED) if "trigger" in p]
    assert len(retraining) == 1 and retraining[0]["purpose"] == "retraining"
    assert retraining[0]["config"]["retrain-trigger"] == str(retraining[0]["trigger"]["seq"])


def test_the_retraining_run_is_linked_to_its_trigger_in_the_ledger_and_lineage(watched):
    fed, run_id, _ = watched
    [(decided, payload)] = [(e, p) for e, p in fed.entries(et.MONITOR_TRIGGER) if p["decision"] == "retrain"]
    [(started, run)] = [(e, p) for e, p in fed.entries(et.RUN_STARTED) if "trigger" in p]
    assert run["trigger"] == {"seq": decided.seq, "leaf_hash": decided.leaf_hash.hex()}
    assert started.seq > decided.seq and payload["evidence"]["run_id"] == run_id != started.run_id
    [(finished, _)] = [(e, p) for e, p in fed.entries(et.ROUND_AGGREGATED) if e.run_id == started.run_id][-1:]
    tree = json.loads(fed.fedgov("lineage", "show", finished.model_hash, "--json").stdout)
    assert tree["run_id"] == started.run_id and tree["trigger"]["seq"] == decided.seq
    assert tree["trigger"]["fired"] == payload["fired"] and tree["trigger"]["decision"] == "retrain"
    prov = json.loads(fed.fedgov("lineage", "export").stdout)
    assert {"prov:activity": f"fedgov:round/{started.run_id}/0",
            "prov:starter": f"fedgov:trigger/{decided.seq}"} in prov["wasStartedBy"].values()


def test_sigterm_during_a_retraining_run_leaves_no_process_and_closes_the_run(tmp_path):
    """Evidence written directly (a fired drift-share), then SIGTERM to the watch once its child has started the run."""
    fed = Federation(tmp_path)
    fed.fedgov("audit", "init")
    with Ledger.open(Workspace.discover(tmp_path / "workspace")) as ledger:
        record_round(ledger, "run-0", 2, value=0.9, best=0.95, nodes=ten_nodes(), drifting=DRIFTING)
    fed.policy.write_text(POLICY.format(out=tmp_path).replace("rounds = 2", "rounds = 500"))
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
