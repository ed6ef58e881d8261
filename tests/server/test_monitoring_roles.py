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
