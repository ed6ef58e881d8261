"""The coordinator's monitoring roles: built only with monitoring on; the recorder writes its verdicts to a real
ledger before the run goes on, and a write that fails stops the run."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import SQLAlchemyError

from fedgov.settings import RunSettings
from governance import entry_types as et
from governance.identity import NodeRegistry
from governance.ledger import Ledger, create_workspace
from server.app import coordinator


def test_with_monitoring_off_the_coordinator_builds_no_monitor_and_checks_no_summary(tmp_path):
    workspace = create_workspace(tmp_path / ".fedgov", "pw")
    with Ledger.open(workspace, "pw") as ledger:
        off = coordinator(ledger, "7", RunSettings.from_run_config({"monitor": False}), {}, NodeRegistry())
        on = coordinator(ledger, "8", RunSettings.from_run_config(), {}, NodeRegistry())
    assert off.monitor is None and off.summaries is None and len(off.reply_checks()) == 1
    assert off.observers() == [off.recorder]
    assert on.monitor is not None and len(on.reply_checks()) == 2 and on.observers() == [on.recorder, on.monitor]


def test_the_reference_is_recorded_once_and_the_round_metrics_after_evaluation(tmp_path):
    workspace = create_workspace(tmp_path / ".fedgov", "pw")
    with Ledger.open(workspace, "pw") as ledger:
        roles = coordinator(ledger, "9", RunSettings.from_run_config({"monitor-bins": 4}), {}, NodeRegistry())
        roles.monitor.run_started()
        roles.monitor.evaluated(0, {"accuracy": 0.5, "loss": 1.0})
        roles.monitor.evaluated(1, {"accuracy": 0.8, "loss": 0.5})
        entries = [(e, ledger.read_payload(e)) for e in ledger.query(run_id="9")]
    [(_, reference)] = [(e, p) for e, p in entries if e.entry_type == et.MONITOR_REFERENCE]
    assert reference["bins"] == 4 and len(reference["features"]) == 30 and len(reference["cuts_hash"]) == 64
    [(entry, metrics)] = [(e, p) for e, p in entries if e.entry_type == et.MONITOR_METRICS]
    assert entry.round == 1 and metrics["global"]["baseline"] == 0.5 and metrics["global"]["value"] == 0.8


def test_a_monitor_record_that_cannot_be_written_stops_the_run(tmp_path):
    workspace = create_workspace(tmp_path / ".fedgov", "pw")
    with Ledger.open(workspace, "pw") as ledger:
        roles = coordinator(ledger, "10", RunSettings.from_run_config(), {}, NodeRegistry())
    with sqlite3.connect(workspace.sqlite_path) as db:
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON fedgov_entries BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with Ledger.open(workspace, "pw") as ledger:
        roles = coordinator(ledger, "10", RunSettings.from_run_config(), {}, NodeRegistry())
        with pytest.raises((SQLAlchemyError, sqlite3.Error), match="disk full"):
            roles.monitor.run_started()


def test_the_console_line_names_the_drifting_nodes_the_worst_node_and_those_below_the_floor() -> None:
    """What an operator watching the run reads each round (and rounds.json keeps)."""
    from server.report import monitoring_line

    metrics = {"drift": {"significant": ["sim-0001", "sim-0004"], "nodes_with_verdict": 10},
               "worst": {"node_id": "sim-0005", "value": 0.125}, "flagged": ["sim-0005"], "floor": 0.6}
    assert monitoring_line(metrics) == ("significant drift on 2 of 10 nodes (sim-0001, sim-0004); "
                                        "worst node sim-0005 0.125; below 0.6: sim-0005")
    quiet = {"drift": {"significant": [], "nodes_with_verdict": 10}, "worst": {"node_id": "sim-0002", "value": 0.9},
             "flagged": [], "floor": 0.6}
    assert monitoring_line(quiet) == "no significant drift (10 nodes judged); worst node sim-0002 0.900; none below the floor"
