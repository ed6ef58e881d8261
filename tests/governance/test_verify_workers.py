"""`audit verify` on several processes says what one process says: the same report, the same first failure.

The ranges are made tiny here (4 entries, so a 37-entry ledger spans ten ranges over two
workers) so that every tamper vector, every checkpoint inside a range and every range
boundary is exercised; in use a ledger under PARALLEL_MIN entries is verified serially.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from governance.errors import FedgovError
from governance.ledger import EntryDraft, Ledger, create_workspace
from governance.ledger import store as store_module
from governance.ledger import verify_workers
from governance.ledger.verify import verify_ledger
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE, fedgov_argv, fedgov_env
from tests.governance.attacks import rewrite_entry, sql, sql_script
from tests.governance.tamper_vectors import attacked_copy, build_good_ledger, tamper_cases


@pytest.fixture
def tiny_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_workers, "PARALLEL_MIN", 1)
    monkeypatch.setattr(verify_workers, "SMALLEST_RANGE", 4)
    monkeypatch.setattr(verify_workers, "RANGES_PER_WORKER", 1000)


def _outcome(ws: Workspace, workers: int) -> object:
    """The report, or the error's type and line."""
    try:
        return verify_ledger(ws, workers=workers)
    except FedgovError as err:
        return type(err).__name__, str(err)


def _children() -> set[int]:
    """Processes whose parent is this one."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "stat").read_text().rsplit(")", 1)[1].split()[1] == str(os.getpid()):
                found.add(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return build_good_ledger(tmp_path_factory.mktemp("good") / ".fedgov")


def test_the_columns_workers_read_are_the_stores() -> None:
    assert verify_workers.COLUMNS == ", ".join(store_module.ENTRY_COLUMNS)


@pytest.mark.parametrize("case", tamper_cases(), ids=lambda c: c.name)
def test_every_tamper_vector_fails_with_the_serial_line(case: object, good: Workspace, tmp_path: Path,
                                                          tiny_ranges: None) -> None:
    ws = attacked_copy(good, case, tmp_path / ".fedgov")  # type: ignore[arg-type]
    before = _children()
    assert _outcome(ws, 2) == _outcome(ws, 1)
    assert _children() == before


def test_a_good_ledger_gives_the_same_report(good: Workspace, tiny_ranges: None) -> None:
    report = verify_ledger(good, workers=2)
    assert report == verify_ledger(good, workers=1)
    assert report.entries == 37 and report.cache_nodes


ALTERED = "entry seq {}: stored fields do not hash to its recorded leaf hash (entry altered after it was appended)"


def test_a_row_in_the_second_workers_range_is_named(tmp_path: Path, tiny_ranges: None) -> None:
    ws = build_good_ledger(tmp_path / ".fedgov")
    sql(ws, "UPDATE fedgov_entries SET node_id = 'forged' WHERE seq = 30")
    assert _outcome(ws, 2) == _outcome(ws, 1) == ("VerificationError", ALTERED.format(30))


def test_of_two_bad_rows_in_two_ranges_the_lower_wins(tmp_path: Path, tiny_ranges: None) -> None:
    ws = build_good_ledger(tmp_path / ".fedgov")
    sql(ws, "UPDATE fedgov_entries SET node_id = 'forged' WHERE seq IN (5, 30)")
    assert _outcome(ws, 2) == _outcome(ws, 1) == ("VerificationError", ALTERED.format(5))


def test_a_checkpoint_row_whose_size_is_a_real_number_is_judged_as_one_process_judges_it(tmp_path: Path,
                                                                                        tiny_ranges: None) -> None:
    """Found by an attacker: the ranges stop at the signed sizes, not at what the rows say (13.0 for 13)."""
    ws = build_good_ledger(tmp_path / ".fedgov")
    sql_script(ws, "ALTER TABLE fedgov_checkpoints RENAME TO old; CREATE TABLE fedgov_checkpoints (id INTEGER PRIMARY "
                   "KEY, tree_size, note TEXT, consistency_proof TEXT, created TEXT); INSERT INTO fedgov_checkpoints "
                   "SELECT id, CAST(tree_size AS REAL), note, consistency_proof, created FROM old; DROP TABLE old;")
    assert _outcome(ws, 2) == _outcome(ws, 1)
    assert verify_ledger(ws, workers=2).entries == 37


def test_a_signed_root_before_a_bad_row_is_checked_first(tmp_path: Path, tiny_ranges: None) -> None:
    """A clean forgery of seq 5 (its leaf hash and the cache recomputed) fails at checkpoint #2 (size 13),
    before the altered seq 30 is reached; the other way round, seq 5 is named."""
    ws = build_good_ledger(tmp_path / ".fedgov")
    rewrite_entry(ws, 5, node_id="forged")
    sql(ws, "UPDATE fedgov_entries SET node_id = 'forged' WHERE seq = 30")
    kind, line = _outcome(ws, 2)  # type: ignore[misc]
    assert (kind, line) == _outcome(ws, 1)
    assert line.startswith("checkpoint #2 (tree size 13): signed root ")
    other = build_good_ledger(tmp_path / "other" / ".fedgov")
    rewrite_entry(other, 30, node_id="forged")
    sql(other, "UPDATE fedgov_entries SET node_id = 'forged' WHERE seq = 5")
    assert _outcome(other, 2) == _outcome(other, 1) == ("VerificationError", ALTERED.format(5))


def test_a_row_a_worker_cannot_read_sends_the_parent_to_the_serial_verifier(tmp_path: Path,
                                                                            tiny_ranges: None) -> None:
    """Text that is not UTF-8 in seq 30: the driver refuses it, and the line is the serial verifier's."""
    ws = build_good_ledger(tmp_path / ".fedgov")
    sql(ws, "UPDATE fedgov_entries SET node_id = CAST(X'ff' AS TEXT) WHERE seq = 30")
    expected = ("VerificationError", "a stored row cannot be read as the schema defines it (tampered): OperationalError")
    assert _outcome(ws, 2) == _outcome(ws, 1) == expected


def test_a_ledger_under_the_threshold_starts_no_process(good: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[object] = []
    monkeypatch.setattr(verify_workers, "_Pool", lambda *args: started.append(args))
    assert verify_ledger(good, workers=2).entries == 37
    assert not started


def test_a_worker_that_dies_is_one_line_and_nothing_is_left(good: Workspace, tiny_ranges: None,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    killed = verify_workers._Pool.results

    def results(pool: verify_workers._Pool, tasks: list) -> object:
        pool.processes[1].kill()
        return killed(pool, tasks)

    monkeypatch.setattr(verify_workers._Pool, "results", results)
    before = _children()
    with pytest.raises(verify_workers.WorkerError, match=r"a verify worker process stopped \(exit code -9\)"):
        verify_ledger(good, workers=2)
    assert _children() == before


def test_ctrl_c_stops_the_workers(tmp_path: Path) -> None:
    """A real-sized ledger (over PARALLEL_MIN), the CLI interrupted while its workers hash."""
    ws = create_workspace(tmp_path / ".fedgov", PASSPHRASE)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        for start in range(0, verify_workers.PARALLEL_MIN + 20000, 20000):  # ~1 s of work to interrupt
            ledger.append([EntryDraft("round.reply", {"i": i}, "node:n1", run_id="r1", round=i // 100,
                                      node_id=f"n{i % 10}") for i in range(start, start + 20000)])
    cli = subprocess.Popen(fedgov_argv("audit", "verify", "--workspace", str(ws.path), "--workers", "2"),
                           env=fedgov_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    workers: set[int] = set()
    deadline = time.monotonic() + 60
    while len(workers) < 2 and time.monotonic() < deadline and cli.poll() is None:
        workers = {pid for pid in _pids() if _parent(pid) == cli.pid}
        time.sleep(0.01)
    assert len(workers) == 2, "the workers never started"
    os.killpg(cli.pid, signal.SIGINT)  # what a terminal does: the foreground group, which the workers are not in
    cli.wait(timeout=60)
    assert cli.returncode != 0
    assert not {pid for pid in workers if _alive(pid)}


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _parent(pid: int) -> int | None:
    try:
        return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# -- PostgreSQL: server-side cursors in the workers, one snapshot shared by all --------------------------------


def _pg_ledger(path: Path, pg_url: str) -> Workspace:
    """build_good_ledger's ledger (37 entries, checkpoints at 1, 13, 25, 37) on PostgreSQL."""
    ws = create_workspace(path, PASSPHRASE, db_url=pg_url)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        for r in range(3):
            ledger.append([EntryDraft("round.reply", {"i": i}, f"node:n{i}", run_id="r1", round=r, node_id=f"n{i}")
                           for i in range(12)])
            ledger.checkpoint()
    return ws


def _pg_sql(pg_url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("ALTER TABLE fedgov_entries DISABLE TRIGGER USER")
        conn.execute(statement)
        conn.execute("ALTER TABLE fedgov_entries ENABLE TRIGGER USER")


def test_postgresql_same_report_and_the_lower_bad_row_wins(pg_url: str, tmp_path: Path, tiny_ranges: None) -> None:
    ws = _pg_ledger(tmp_path / ".fedgov", pg_url)
    before = _children()
    assert verify_ledger(ws, workers=2) == verify_ledger(ws, workers=1)
    _pg_sql(pg_url, "UPDATE fedgov_entries SET node_id = 'forged' WHERE seq = 30")
    assert _outcome(ws, 2) == _outcome(ws, 1) == ("VerificationError", ALTERED.format(30))
    _pg_sql(pg_url, "UPDATE fedgov_entries SET node_id = 'forged' WHERE seq = 5")
    assert _outcome(ws, 2) == _outcome(ws, 1) == ("VerificationError", ALTERED.format(5))
    assert _children() == before


def test_postgresql_workers_read_the_parents_snapshot(pg_url: str, tmp_path: Path, tiny_ranges: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A row altered after the parent fixed its snapshot is not what the workers read."""
    ws = _pg_ledger(tmp_path / ".fedgov", pg_url)
    export = store_module.LedgerStore.export_snapshot

    def export_then_alter(store: store_module.LedgerStore, conn: object) -> str | None:
        snapshot = export(store, conn)  # type: ignore[arg-type]
        _pg_sql(pg_url, "UPDATE fedgov_entries SET node_id = 'forged' WHERE seq = 30")
        return snapshot

    monkeypatch.setattr(store_module.LedgerStore, "export_snapshot", export_then_alter)
    assert verify_ledger(ws, workers=2).entries == 37  # the snapshot before the change verifies
    monkeypatch.setattr(store_module.LedgerStore, "export_snapshot", export)
    assert _outcome(ws, 2) == ("VerificationError", ALTERED.format(30))  # a new verify sees it
