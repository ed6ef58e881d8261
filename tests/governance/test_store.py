"""Storage: append-only in the database itself, concurrent writers, schema versions, PostgreSQL."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from governance.ledger import EntryDraft, Ledger, create_workspace
from governance.ledger.verify import verify_ledger
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE

WRITERS, BATCHES, PER_BATCH = 4, 5, 20


def _writer(path: str, db_url: str | None, worker: int) -> None:
    ws = Workspace(__import__("pathlib").Path(path), db_url)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        for batch in range(BATCHES):
            ledger.append([EntryDraft("update_received", {"w": worker, "b": batch, "i": i}, f"node:w{worker}",
                                      run_id="conc", round=batch, node_id=f"w{worker}") for i in range(PER_BATCH)])
            if batch % 2:
                ledger.checkpoint()


def _run_writers(ws: Workspace) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(ws.path), ws.db_url_override, w)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * WRITERS


def _assert_gapless_and_verified(ws: Workspace) -> None:
    report = verify_ledger(ws)
    assert report.entries == 1 + WRITERS * BATCHES * PER_BATCH
    with Ledger.open(ws, PASSPHRASE) as ledger:
        ledger.checkpoint()
        seqs = [e.seq for e in ledger.query()]
        assert seqs == list(range(len(seqs)))
        assert sorted(ledger.read_payload(e)["w"] for e in ledger.query(run_id="conc"))[::PER_BATCH * BATCHES] \
            == list(range(WRITERS))
    assert verify_ledger(ws).checkpoints >= 2


def test_parallel_writer_processes_keep_sqlite_gapless_and_consistent(workspace: Workspace) -> None:
    _run_writers(workspace)
    _assert_gapless_and_verified(workspace)


@pytest.mark.parametrize("statement", ["UPDATE fedgov_entries SET node_id = 'x' WHERE seq = 0",
                                       "DELETE FROM fedgov_entries WHERE seq = 0",
                                       "DELETE FROM fedgov_checkpoints",
                                       "UPDATE fedgov_tree_nodes SET hash = x'00'"])
def test_sqlite_triggers_reject_update_and_delete(ledger: Ledger, statement: str) -> None:
    ledger.append([EntryDraft("t", {}, "s") for _ in range(15)])  # 16 leaves: a stored level-4 node
    db = sqlite3.connect(ledger.workspace.sqlite_path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute(statement)
    db.close()


def test_postgres_ledger_appends_checkpoints_and_verifies(tmp_path, pg_url: str) -> None:
    ws = create_workspace(tmp_path / ".fedgov", PASSPHRASE, db_url=pg_url)
    assert ws.config()["db_url"] == pg_url
    with Ledger.open(ws) as ledger:
        ledger.append([EntryDraft("t", {"i": i}, "run:pg", run_id="pg", round=1, node_id="n") for i in range(5)])
        ledger.checkpoint()
        ledger.shred("run:pg", actor="a", reason="r")
        ledger.rotate_kek(actor="ops")
        assert ledger.read_payload(ledger.query(entry_type="kek_rotated")[0])["actor"] == "ops"
    assert verify_ledger(ws).entries == 8


@pytest.mark.parametrize("statement", ["UPDATE fedgov_entries SET node_id = 'x'", "DELETE FROM fedgov_entries",
                                       "TRUNCATE fedgov_entries", "TRUNCATE fedgov_checkpoints"])
def test_postgres_triggers_reject_update_delete_and_truncate(tmp_path, pg_url: str, statement: str) -> None:
    create_workspace(tmp_path / ".fedgov", PASSPHRASE, db_url=pg_url)
    engine = sa.create_engine(pg_url)
    try:
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def test_parallel_writer_processes_keep_postgres_gapless_and_consistent(tmp_path, pg_url: str) -> None:
    ws = create_workspace(tmp_path / ".fedgov", PASSPHRASE, db_url=pg_url)
    _run_writers(ws)
    _assert_gapless_and_verified(ws)


def _page_size(ws: Workspace) -> int:
    with sqlite3.connect(ws.path / "ledger.db") as conn:
        return conn.execute("PRAGMA page_size").fetchone()[0]


def test_a_new_sqlite_ledger_has_16_kib_pages(workspace: Workspace) -> None:
    assert _page_size(workspace) == 16384


def test_a_ledger_made_with_4_kib_pages_keeps_them_and_still_appends_and_verifies(workspace: Workspace) -> None:
    # A ledger an earlier fedgov made: rebuilt with 4 KiB pages (VACUUM outside WAL mode, then WAL again).
    conn = sqlite3.connect(workspace.path / "ledger.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("PRAGMA page_size = 4096")
    conn.execute("VACUUM")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    assert _page_size(workspace) == 4096
    with Ledger.open(workspace, PASSPHRASE) as ledger:
        ledger.append([EntryDraft("update_received", {"i": i}, "node:a", run_id="r", round=1, node_id="a")
                       for i in range(300)])
        ledger.checkpoint()
    assert _page_size(workspace) == 4096
    assert verify_ledger(workspace).entries == 301
