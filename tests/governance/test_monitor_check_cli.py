"""`fedgov monitor check` and `watch` over a real ledger holding monitoring evidence (no Flower run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from governance import entry_types as et
from governance.ledger import EntryDraft, Ledger
from governance.workspace import Workspace
from tests.fedgov_command import run_fedgov
from tests.governance.monitor_evidence import DRIFTING, record_round, ten_nodes

POLICY = """cooldown = "1h"
[triggers]
accuracy_drop = 0.05
drift_share = 0.3
worst_node_below = 0.6
[retrain]
rounds = 2
nodes = 4
"""


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return path


def monitor(ws: Workspace, *args: str):
    return run_fedgov("monitor", *args, "--workspace", str(ws.path))


def triggers(ws: Workspace) -> list[dict]:
    with Ledger.open(ws) as ledger:
        return [{"seq": e.seq, **ledger.read_payload(e)} for e in ledger.query(entry_type=et.MONITOR_TRIGGER)]


def drifted(ws: Workspace) -> int:
    with Ledger.open(ws) as ledger:
        record_round(ledger, "run-1", 1, value=0.95, best=0.95, nodes=ten_nodes())
        return record_round(ledger, "run-1", 2, value=0.94, best=0.95, nodes=ten_nodes(), drifting=DRIFTING)


def test_a_ledger_without_monitoring_evidence_is_an_error_not_an_empty_answer(workspace, policy):
    done = monitor(workspace, "check", "--policy", str(policy))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "holds no monitoring evidence" in done.stderr
    assert triggers(workspace) == []


def test_check_names_the_drifting_nodes_and_features_and_records_a_no(workspace, policy):
    metrics_seq = drifted(workspace)
    done = monitor(workspace, "check", "--policy", str(policy))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "run run-1, round 2" in out and "FIRED" in out
    for node, features in DRIFTING.items():
        assert f"  {node}: {', '.join(sorted(features))}" in out
    [entry] = triggers(workspace)
    assert entry["command"] == "check" and entry["decision"] == "no-retrain" and entry["fired"] == ["drift-share"]
    assert entry["evidence"]["metrics_seq"] == metrics_seq and entry["evidence"]["round"] == 2
    assert len(entry["evidence"]["drift_seqs"]) == 10  # the nodes, not the federation figure
    assert f"recorded as monitor.trigger seq {entry['seq']}" in out
    with Ledger.open(workspace) as ledger:
        assert ledger.query(entry_type=et.RUN_STARTED) == []  # it never trains


def test_check_json_is_the_recorded_entry_and_exit_code_says_fired(workspace, policy):
    drifted(workspace)
    done = monitor(workspace, "check", "--policy", str(policy), "--format", "json", "--exit-code")
    assert done.returncode == 3, done.stderr
    shown = json.loads(done.stdout)
    [entry] = triggers(workspace)
    assert shown == entry
    drift = next(t for t in shown["triggers"] if t["name"] == "drift-share")
    assert drift["statistic"] == 0.3 and drift["nodes"] == sorted(DRIFTING)


def test_exit_code_is_0_when_nothing_fired(workspace, policy):
    with Ledger.open(workspace) as ledger:
        record_round(ledger, "run-1", 1, value=0.95, best=0.95, nodes=ten_nodes())
    done = monitor(workspace, "check", "--policy", str(policy), "--exit-code")
    assert done.returncode == 0 and "decision: no-retrain (nothing fired)" in done.stdout


def test_check_weighs_the_latest_run_unless_told(workspace, policy):
    drifted(workspace)
    with Ledger.open(workspace) as ledger:
        record_round(ledger, "run-2", 1, value=0.95, best=0.95, nodes=ten_nodes())
    assert "run run-2, round 1" in monitor(workspace, "check", "--policy", str(policy)).stdout
    assert "run run-1, round 2" in monitor(workspace, "check", "--policy", str(policy), "--run", "run-1").stdout
    unknown = monitor(workspace, "check", "--policy", str(policy), "--run", "run-3")
    assert unknown.returncode == 2 and "--run 'run-3'" in unknown.stderr


def test_a_bad_policy_is_one_line_before_the_ledger_is_touched(workspace, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[triggers]\ndrift_share = 30\n")
    done = monitor(workspace, "check", "--policy", str(bad))
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "triggers.drift_share = 30 is out of range" in done.stderr
    missing = monitor(workspace, "check", "--policy", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "cannot read --policy" in missing.stderr


def test_watch_records_every_no_and_launches_nothing_when_nothing_fired(workspace, policy):
    with Ledger.open(workspace) as ledger:
        record_round(ledger, "run-1", 1, value=0.95, best=0.95, nodes=ten_nodes())
    done = monitor(workspace, "watch", "--policy", str(policy), "--interval", "0.1", "--max-checks", "2")
    assert done.returncode == 0, done.stderr
    assert [(t["command"], t["decision"], t["reason"]) for t in triggers(workspace)] == \
        [("watch", "no-retrain", "nothing fired")] * 2
    assert "launching" not in done.stdout


def retrain_decision(ws: Workspace, run_id: str, metrics_seq: int) -> int:
    """A monitor.trigger entry that decided to retrain on this evidence (as an earlier watch would have)."""
    record = {"policy": {}, "policy_hash": "0" * 64, "decision": "retrain", "reason": "fired drift-share",
              "evidence": {"run_id": run_id, "round": 2, "metrics_seq": metrics_seq, "drift_seqs": []},
              "triggers": [], "fired": ["drift-share"], "command": "watch"}
    with Ledger.open(ws) as ledger:
        return ledger.append([EntryDraft(et.MONITOR_TRIGGER, record, et.MONITOR_SCOPE)], sign=True)[0]


def test_watch_does_not_act_twice_on_the_same_evidence(workspace, policy):
    metrics_seq = drifted(workspace)
    earlier = retrain_decision(workspace, "run-1", metrics_seq)
    policy.write_text(POLICY.replace('"1h"', "0"))  # no cooldown: only "already acted on" holds it
    done = monitor(workspace, "watch", "--policy", str(policy), "--interval", "0.1", "--max-checks", "1")
    assert done.returncode == 0, done.stderr
    last = triggers(workspace)[-1]
    assert last["decision"] == "no-retrain" and last["fired"] == ["drift-share"]
    assert last["reason"].startswith(f"evidence already acted on: retraining was decided on it at seq {earlier}")
    assert "launching" not in done.stdout


def test_watch_holds_new_evidence_during_the_cooldown_of_the_last_retraining(workspace, policy):
    drifted(workspace)
    earlier = retrain_decision(workspace, "run-0", 1)  # a retraining decided moments ago, on other evidence
    done = monitor(workspace, "watch", "--policy", str(policy), "--interval", "0.1", "--max-checks", "1")
    assert done.returncode == 0, done.stderr
    last = triggers(workspace)[-1]
    assert last["decision"] == "no-retrain" and last["reason"].startswith("cooldown until ")
    assert f"retraining was decided at seq {earlier}" in last["reason"]
    with Ledger.open(workspace) as ledger:
        assert ledger.query(entry_type=et.RUN_STARTED) == []


@pytest.mark.parametrize("args, says", [
    (("--interval", "0"), "--interval must be a number of seconds"),
    (("--interval", "1", "--max-checks", "0"), "--max-checks must be a whole number from 1"),
    (("--interval", "1", "--max-checks", "9" * 30), "--max-checks must be a whole number from 1"),
])
def test_watch_refuses_bad_options_in_one_line(workspace, policy, args, says):
    done = monitor(workspace, "watch", "--policy", str(policy), *args)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and says in done.stderr


def test_watch_refuses_a_retrain_table_that_could_never_launch(workspace, tmp_path):
    bad = tmp_path / "p.toml"
    bad.write_text("[triggers]\ndrift_share = 0.3\n[retrain]\ndataset = 'mnist'\n")
    done = monitor(workspace, "watch", "--policy", str(bad), "--interval", "1")
    assert done.returncode == 2 and "the policy's [retrain] cannot launch a run" in done.stderr
    assert "mnist" in done.stderr


def test_with_an_auditor_the_check_records_its_read_of_the_evidence_first(workspace, policy):
    from governance.identities import Identity

    drifted(workspace)
    with Ledger.open(workspace) as ledger:
        ledger.register_identity(Identity.generate("alice", "auditor").public, "operator")
    done = monitor(workspace, "check", "--policy", str(policy))
    assert done.returncode == 0, done.stderr
    with Ledger.open(workspace) as ledger:
        reads = ledger.query(entry_type=et.AUDIT_READ)
        [trigger] = ledger.query(entry_type=et.MONITOR_TRIGGER)
        assert ledger.read_payload(trigger)["fired"] == ["drift-share"]  # operator-readable: not sealed
    assert len(reads) == 1 and reads[0].seq < trigger.seq


def test_the_retraining_command_line_follows_the_policy(tmp_path):
    from cli.monitor_watch import retrain_argv
    from governance.monitoring.policy import parse_policy

    sim = parse_policy(POLICY + "dataset = 'digits'\nout = 'runs/r-{seq}'\n").retrain
    argv = retrain_argv(sim, 17, tmp_path)
    assert argv[3:6] == ["cli", "sim", "run"]
    assert argv[6:] == ["--purpose", "retraining", "--workspace", str(tmp_path), "--out", "runs/r-17",
                        "--retrain-trigger", "17", "--rounds", "2", "--nodes", "4", "--dataset", "digits"]
    deployed = parse_policy("[triggers]\ndrift_share = 0.3\n[retrain]\nkind = 'deployed'\nnodes = 3\n").retrain
    argv = retrain_argv(deployed, 5, tmp_path)
    assert argv[3:5] == ["cli", "run"] and argv[-4:] == ["--retrain-trigger", "5", "--nodes", "3"]


def test_watch_waits_for_evidence_and_says_so_when_none_came(workspace, policy):
    done = monitor(workspace, "watch", "--policy", str(policy), "--interval", "0.1", "--max-checks", "2")
    assert done.returncode == 2 and done.stdout.count("no decision yet: this ledger holds no monitoring evidence") == 2
    assert done.stderr.count("\n") == 1 and "holds no monitoring evidence" in done.stderr
    assert triggers(workspace) == []


def test_one_watch_per_workspace(workspace, policy):
    import fcntl
    import os

    fd = os.open(workspace.path / "monitor-watch.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b'{"pid": 4242}')
        done = monitor(workspace, "watch", "--policy", str(policy), "--interval", "1", "--max-checks", "1")
    finally:
        os.close(fd)
    assert done.returncode == 2 and "another `fedgov monitor watch` (pid 4242) is watching" in done.stderr


def test_only_decisions_that_can_still_hold_a_check_are_read(workspace):
    from datetime import datetime, timedelta, timezone

    from governance.monitoring.evidence import past_retraining

    old = retrain_decision(workspace, "run-0", 1)
    metrics_seq = drifted(workspace)
    on_it = retrain_decision(workspace, "run-1", metrics_seq)
    with Ledger.open(workspace) as ledger:
        assert [p.seq for p in past_retraining(ledger)] == [old, on_it]
        future = datetime.now(timezone.utc) + timedelta(hours=1)  # no cooldown window reaches back to `old`
        assert [p.seq for p in past_retraining(ledger, after_seq=metrics_seq, since=future)] == [on_it]
        assert [p.seq for p in past_retraining(ledger, after_seq=metrics_seq,
                                               since=future - timedelta(days=1))] == [old, on_it]
