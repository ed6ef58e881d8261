"""`fedgov sim run --retrain-trigger SEQ` names a recorded monitor.trigger entry, or is refused before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance import entry_types as et
from governance.ledger import Ledger, create_workspace
from tests.fedgov_command import PASSPHRASE, run_fedgov


@pytest.mark.parametrize("trigger, says", [
    ("999", "--retrain-trigger 999 names no ledger entry"),
    ("0", "--retrain-trigger must be the seq of a monitor.trigger entry"),
    ("x1", "--retrain-trigger must be the seq of a monitor.trigger entry"),
])
def test_a_trigger_the_ledger_lacks_is_refused_in_one_line(tmp_path: Path, trigger, says):
    ws = create_workspace(tmp_path / ".fedgov", PASSPHRASE)
    done = run_fedgov("sim", "run", "--nodes", "2", "--rounds", "1", "--workspace", str(ws.path),
                      "--out", str(tmp_path / "run"), "--retrain-trigger", trigger, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and says in done.stderr
    with Ledger.open(ws) as ledger:
        assert ledger.query(entry_type=et.RUN_STARTED) == []
    assert not (tmp_path / "run").exists()


def test_an_entry_of_another_type_is_refused(tmp_path: Path):
    ws = create_workspace(tmp_path / ".fedgov", PASSPHRASE)
    granted = run_fedgov("consent", "grant", "--node", "sim-0000", "--team", "t", "--purpose", "simulation",
                         "--data-category", "x", "--notice-version", "v1", "--notice-hash", "0" * 64,
                         "--workspace", str(ws.path))
    seq = granted.stdout.rsplit("ledger entry ", 1)[1].strip(")\n")
    done = run_fedgov("sim", "run", "--nodes", "2", "--rounds", "1", "--workspace", str(ws.path),
                      "--out", str(tmp_path / "run"), "--retrain-trigger", seq, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"--retrain-trigger {seq} names a consent.granted entry, not a monitor.trigger" in done.stderr


def test_a_deployed_run_refuses_it_too_before_looking_for_a_coordinator(tmp_path: Path):
    ws = create_workspace(tmp_path / ".fedgov", PASSPHRASE)
    done = run_fedgov("run", "--purpose", "retraining", "--workspace", str(ws.path), "--retrain-trigger", "999")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "--retrain-trigger 999 names no ledger entry" in done.stderr
