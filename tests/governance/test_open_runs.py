"""Open runs: a run whose every process is gone is closed as abandoned by the next writer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from governance import entry_types as et
from governance.errors import PolicyError
from governance.ledger import Ledger
from governance.ledger.entry import EntryDraft
from governance.open_runs import SCRATCH_PREFIX, close_run, hold_run, is_open

RUN = "1234567890123"


def start_run(ledger: Ledger, run_id: str = RUN) -> None:
    """What the ServerApp writes first: `run.started`, with the run's config hash."""
    ledger.append([EntryDraft(et.RUN_STARTED, {"operator": "alice"}, scope=et.run_scope(run_id), run_id=run_id,
                              config_hash="ab" * 32)], sign=True)


def finished(ledger: Ledger, run_id: str = RUN) -> list[dict]:
    return [ledger.read_payload(e) for e in ledger.query(et.RUN_FINISHED, run_id=run_id)]


def abandon(workspace_dir: Path, run_id: str = RUN, scratch: Path | None = None) -> None:
    """A launcher that took the run's lock and was then killed: the lock file stays, nobody holds it."""
    code = ("import sys; from pathlib import Path; from governance.open_runs import hold_run; "
            f"hold_run(Path(sys.argv[1]), {run_id!r}, Path(sys.argv[2]) if sys.argv[2] else None); "
            "import os; os._exit(0)")  # exits without releasing, as `kill -9` would
    subprocess.run([sys.executable, "-c", code, str(workspace_dir), str(scratch or "")], check=True,
                   cwd=Path(__file__).resolve().parents[2])


def test_the_next_writer_closes_a_run_nobody_holds_as_abandoned(workspace):
    with Ledger.open(workspace) as ledger:
        start_run(ledger)
    abandon(workspace.path)
    with Ledger.open(workspace) as ledger:  # any command that opens the ledger to write
        [payload] = finished(ledger)
        assert payload["status"] == "abandoned"
        assert payload["reason"].startswith("every process of the run ended without closing it (pid ")
        assert not is_open(ledger, RUN)
    assert not (workspace.path / "runs" / f"{RUN}.lock").exists()


def test_a_run_whose_launcher_is_alive_is_left_open(workspace):
    with Ledger.open(workspace) as ledger:
        start_run(ledger)
    hold = hold_run(workspace.path, RUN)
    try:
        with Ledger.open(workspace) as ledger:
            assert finished(ledger) == [] and is_open(ledger, RUN)
    finally:
        hold.release(closed=True)


def test_a_reader_closes_nothing(workspace):
    with Ledger.open(workspace) as ledger:
        start_run(ledger)
    abandon(workspace.path)
    with Ledger.open(workspace, write=False) as ledger:
        assert is_open(ledger, RUN)


def test_the_abandoned_runs_scratch_directory_is_removed(workspace):
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    (scratch / "request.json").write_text(json.dumps({"run_id": int(RUN)}))
    with Ledger.open(workspace) as ledger:
        start_run(ledger)
    abandon(workspace.path, scratch=scratch)
    Ledger.open(workspace).close()
    assert not scratch.exists()


def test_only_a_scratch_directory_whose_request_names_that_run_is_ever_removed(workspace, tmp_path):
    other_run = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))  # another run's, say
    (other_run / "request.json").write_text(json.dumps({"run_id": 999}))
    try:
        abandon(workspace.path, scratch=other_run)
        Ledger.open(workspace).close()
        assert other_run.exists()
    finally:
        shutil.rmtree(other_run)


def test_a_run_its_launcher_could_not_close_keeps_its_lock_file_for_the_next_writer(workspace):
    with Ledger.open(workspace) as ledger:
        start_run(ledger)
    hold = hold_run(workspace.path, RUN)
    hold.release(closed=False)  # the closing write failed: the run is still open
    assert hold.path.exists()
    with Ledger.open(workspace) as ledger:
        assert finished(ledger)[0]["status"] == "abandoned"


def test_a_sweep_that_cannot_close_a_run_warns_and_never_stops_the_writer(workspace, capsys):
    with Ledger.open(workspace) as ledger:
        start_run(ledger)
    abandon(workspace.path)
    (workspace.head_path).unlink()  # the signer now refuses: its signed head is missing
    Ledger.open(workspace).close()  # still opens, e.g. for `audit checkpoint --adopt`
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"warning: run {RUN} was abandoned and could not be closed now (SigningRefusedError: ")
    assert line.endswith("the next command that writes will try again")
    assert (workspace.path / "runs" / f"{RUN}.lock").exists()


def test_a_lock_without_a_started_run_is_cleared_and_records_nothing(workspace):
    abandon(workspace.path)  # killed during enrolment, before `run.started`
    with Ledger.open(workspace) as ledger:
        assert ledger.query(et.RUN_FINISHED) == []
    assert not (workspace.path / "runs" / f"{RUN}.lock").exists()


def test_closing_keeps_the_runs_last_model_and_config_hash(workspace):
    with Ledger.open(workspace) as ledger:
        start_run(ledger)
        ledger.append([EntryDraft(et.ROUND_AGGREGATED, {}, scope=et.run_scope(RUN), run_id=RUN, round=1,
                                  model_hash="cd" * 32)], sign=True)
        assert close_run(ledger, RUN, "interrupted", "SIGTERM to fedgov sim run")
        [entry] = ledger.query(et.RUN_FINISHED, run_id=RUN)
        assert entry.config_hash == "ab" * 32
        assert ledger.read_payload(entry) == {"status": "interrupted", "reason": "SIGTERM to fedgov sim run",
                                              "final_model_hash": "cd" * 32}


def test_a_finished_run_is_never_closed_twice(workspace):
    with Ledger.open(workspace) as ledger:
        start_run(ledger)
        assert close_run(ledger, RUN, "interrupted", "SIGINT to fedgov sim run")
        assert not close_run(ledger, RUN, "crashed", "again")
        assert len(finished(ledger)) == 1


def test_a_run_id_is_held_by_one_process_only(workspace):
    hold = hold_run(workspace.path, RUN)
    try:
        with pytest.raises(PolicyError, match=f"run {RUN} is already held by another process"):
            hold_run(workspace.path, RUN)
    finally:
        hold.release(closed=True)


def test_the_lock_file_is_private_and_names_its_holder(workspace):
    hold = hold_run(workspace.path, RUN)
    try:
        assert os.stat(hold.path).st_mode & 0o777 == 0o600
        assert json.loads(hold.path.read_text())["pid"] == os.getpid()
    finally:
        hold.release(closed=True)
    assert not hold.path.exists()


def test_a_lock_file_replaced_under_a_live_run_never_gets_it_closed(workspace):
    """An editor's save swaps the file (same bytes, new inode, nobody's lock): the launcher is still alive."""
    with Ledger.open(workspace) as ledger:
        start_run(ledger)
    ready = workspace.path.parent / "ready"
    launcher = subprocess.Popen(  # the word fedgov in its command line, as a real launcher has
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from governance.open_runs import hold_run; "
         f"hold_run(Path(sys.argv[1]), {RUN!r}); Path(sys.argv[2]).touch(); time.sleep(60)  # fedgov",
         str(workspace.path), str(ready)], cwd=Path(__file__).resolve().parents[2])
    try:
        while not ready.exists():
            assert launcher.poll() is None
            time.sleep(0.05)
        lock = workspace.path / "runs" / f"{RUN}.lock"
        copy = lock.with_suffix(".copy")
        shutil.copy(lock, copy)
        os.replace(copy, lock)
        with Ledger.open(workspace) as ledger:
            assert finished(ledger) == [] and is_open(ledger, RUN)
    finally:
        launcher.kill()
        launcher.wait()


def test_a_scratch_path_through_a_symbolic_link_is_never_removed(workspace, tmp_path):
    real = tmp_path / "real"
    scratch = real / f"{SCRATCH_PREFIX}x"
    scratch.mkdir(parents=True)
    (scratch / "request.json").write_text(json.dumps({"run_id": int(RUN)}))
    (tmp_path / "link").symlink_to(real)
    lock_dir = workspace.path / "runs"
    lock_dir.mkdir(mode=0o700)
    (lock_dir / f"{RUN}.lock").write_text(json.dumps({"pid": 1, "scratch": str(tmp_path / "link" / scratch.name)}))
    Ledger.open(workspace).close()
    assert scratch.exists()
