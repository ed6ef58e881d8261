"""`fedgov audit move --to URL`: a SQLite ledger moved to PostgreSQL (and back), and everything it refuses.

Real databases throughout: a SQLite workspace written by the ledger and the `consent` command,
fresh PostgreSQL databases of the test's own (skipped when no server answers). A refused or
failed move leaves config.json byte for byte as it was and no fedgov table in the target.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from governance.errors import UsageError
from governance.ledger import EntryDraft, Ledger, create_workspace
from governance.ledger.move import move_ledger
from governance.ledger.store import StoreError
from governance.ledger.verify import verify_ledger
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE, fedgov_argv, fedgov_env, run_fedgov
from tests.governance.attacks import fails_with, rewrite_entry, succeeds

NOTICE = "a" * 64


def grant(ws: Workspace, node: str) -> str:
    return succeeds("consent", "grant", "--workspace", str(ws.path), "--node", node, "--team", "t", "--purpose", "p",
                    "--data-category", "x", "--notice-version", "1", "--notice-hash", NOTICE)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 entries past genesis (so cached tree nodes exist), a shredded scope and a consent grant."""
    ws = create_workspace(tmp_path_factory.mktemp("template") / "ws", PASSPHRASE)
    with Ledger.open(ws) as ledger:
        ledger.append([EntryDraft("round.reply", {"i": i}, f"node:n{i % 4}", run_id="1", round=i // 4,
                                  node_id=f"n{i % 4}") for i in range(40)], sign=True)
        ledger.shred("node:n3", actor="dpo", reason="erasure request")  # a destroyed data key, a replaced KEK
    grant(ws, "n1")
    return ws.path


@pytest.fixture
def sqlite_ws(template: Path, tmp_path: Path) -> Workspace:
    """A copy of the template workspace (its SQLite file closed: a plain copy is the same ledger)."""
    shutil.copytree(template, tmp_path / "ws")
    return Workspace(tmp_path / "ws")


def pg_tables(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        return [name for (name,) in conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'fedgov%' "
                                                 "ORDER BY tablename")]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def move(ws: Workspace, url: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_fedgov("audit", "move", "--workspace", str(ws.path), "--to", url, env=env)


def test_a_sqlite_ledger_moved_to_postgres_verifies_decrypts_and_takes_new_entries(sqlite_ws: Workspace,
                                                                                    pg_url: str) -> None:
    ws, source = sqlite_ws, sqlite_ws.sqlite_path
    before = {name: sha256(ws.path / name) for name in ("keystore.json", "trusted_keys", "latest_checkpoint")}
    source_hash, entries = sha256(source), verify_ledger(ws).entries

    done = move(ws, pg_url)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"copying {entries} entries and their tree, checkpoints and keys from sqlite:///{source} to {pg_url}"
    assert lines[1] == "checking the copy"
    assert re.fullmatch(rf"copied {entries} entries, 3 tree nodes, 4 checkpoints, 5 data keys, 6 meta rows in "
                        r"\d+\.\d s; checked in \d+\.\d s", lines[2]), lines[2]
    assert re.fullmatch(rf"checked the copy: {entries} entries, 4 checkpoints and 3 cached tree nodes verify with the "
                        rf"pinned key; tree size {entries} and root [0-9a-f]{{64}} are the source's latest signed "
                        r"checkpoint \(#4\)", lines[3]), lines[3]
    assert lines[4:] == [
        f"the workspace now uses {pg_url} (config.json); keystore, trusted_keys and latest_checkpoint are unchanged",
        f"the old database sqlite:///{source} is left as it was: keep it as a backup, or remove it"]
    assert json.loads(ws.config_path.read_text()) == {"db_url": pg_url, "origin": ws.config()["origin"]}
    assert {name: sha256(ws.path / name) for name in before} == before
    assert sha256(source) == source_hash  # the source is only read

    assert succeeds("audit", "verify", "--require-signed", "--workspace", str(ws.path)).startswith(
        f"checked {entries} entries")
    [record] = json.loads(succeeds("consent", "list", "--workspace", str(ws.path), "--format", "json"))
    assert record["principal"] == "n1" and record["state"] == "valid"
    with Ledger.open(ws, write=False) as ledger:  # the shredded scope stays shredded, the others decrypt
        assert ledger.read_payload(ledger.query(node_id="n2")[0]) == {"i": 2}
        assert ledger.store.url == pg_url
    with Ledger.open(ws) as ledger:  # a new signed entry, on PostgreSQL
        ledger.append([EntryDraft("round.reply", {"after": "move"}, "node:n2", node_id="n2")], sign=True)
    assert verify_ledger(ws).entries == entries + 1
    assert sha256(source) == source_hash
    # the copy is as append-only as a ledger `audit init` made there
    import psycopg

    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as conn, \
            pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        conn.execute("DELETE FROM fedgov_entries")

    back = ws.path.parent / "back" / "ledger.db"  # and PostgreSQL -> SQLite: the same code
    back.parent.mkdir()
    assert move_ledger(ws, f"sqlite:///{back}").rows["fedgov_entries"] == entries + 1
    assert ws.config()["db_url"] == f"sqlite:///{back}" and verify_ledger(ws).entries == entries + 1
    assert oct(back.stat().st_mode & 0o777) == "0o600"
    with Ledger.open(ws) as ledger:
        ledger.append([EntryDraft("round.reply", {"back": "on SQLite"}, "node:n2", node_id="n2")], sign=True)
        assert [ledger.read_payload(e) for e in ledger.query(node_id="n2")][-2:] == [{"after": "move"},
                                                                                    {"back": "on SQLite"}]
    assert verify_ledger(ws).entries == entries + 2


def test_refused_up_front_each_in_one_line(sqlite_ws: Workspace, pg_url: str, tmp_path: Path) -> None:
    ws = sqlite_ws
    config, source = ws.config_path.read_bytes(), sha256(ws.sqlite_path)
    args = ["audit", "move", "--workspace", str(ws.path), "--to"]
    with_password = pg_url.replace("postgres@", "postgres:secret@")
    fails_with([*args, with_password], "error: --to holds a password, which the workspace would keep in config.json: "
               "remove it and give it to the driver through PGPASSWORD or a PGPASSFILE", code=2)
    fails_with([*args, f"sqlite:///{ws.sqlite_path}"], "error: --to names the database this workspace already uses "
               f"(sqlite:///{ws.sqlite_path}): nothing to move", code=2)
    other = tmp_path / "other.db"
    other.write_bytes(b"")
    fails_with([*args, f"sqlite:///{other}"], f"error: --to {other} already exists: a move to SQLite makes a new file",
               code=2)
    fails_with([*args, "mysql://u@h/db"], "error: --to: fedgov keeps its ledger in SQLite or PostgreSQL, not mysql",
               code=2)
    fails_with([*args, pg_url], "error: FEDGOV_DB_URL is set, and it overrides the workspace's config.json: unset it "
               "to move the workspace's ledger", code=2, env={"FEDGOV_DB_URL": f"sqlite:///{ws.sqlite_path}"})
    assert (ws.config_path.read_bytes(), sha256(ws.sqlite_path)) == (config, source)
    with Ledger.open(ws) as ledger:  # an entry no checkpoint covers yet
        ledger.append([EntryDraft("round.reply", {}, "node:n1")])
    fails_with([*args, pg_url], "error: the ledger holds 1 entries after its latest signed checkpoint (tree size "
               "43): sign them first (`fedgov audit checkpoint`), then move", code=2)
    assert ws.config_path.read_bytes() == config and pg_tables(pg_url) == []


def test_a_target_holding_a_ledger_is_refused_and_left_alone(sqlite_ws: Workspace, pg_url: str,
                                                              tmp_path: Path) -> None:
    other = create_workspace(tmp_path / "other", PASSPHRASE, db_url=pg_url)
    config = sqlite_ws.config_path.read_bytes()
    fails_with(["audit", "move", "--workspace", str(sqlite_ws.path), "--to", pg_url],
               f"error: --to {pg_url} already holds fedgov tables (fedgov_meta, fedgov_data_keys, fedgov_checkpoints, "
               "fedgov_entries, fedgov_tree_nodes): a move needs a database with none", code=2)
    assert sqlite_ws.config_path.read_bytes() == config
    assert verify_ledger(other).entries == 1


@pytest.mark.parametrize("lock, line", [
    ("runs/17.lock", "error: run 17 is in progress on this workspace (its lock runs/17.lock is held): move the "
                     "ledger when no run is going"),
    ("coordinator/coordinator.lock", "error: a coordinator (`fedgov server start`) is running on this workspace "
                                     "(coordinator/coordinator.lock is held): stop it first; the ServerApps it starts "
                                     "write to the ledger"),
])
def test_a_workspace_a_run_or_coordinator_writes_to_is_refused(sqlite_ws: Workspace, pg_url: str, lock: str,
                                                               line: str) -> None:
    ws = sqlite_ws
    config, source = ws.config_path.read_bytes(), sha256(ws.sqlite_path)
    path = ws.path / lock
    path.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as the run's launcher or `fedgov server start` holds it
        fails_with(["audit", "move", "--workspace", str(ws.path), "--to", pg_url], line, code=2)
    finally:
        os.close(fd)
    assert (ws.config_path.read_bytes(), sha256(ws.sqlite_path), pg_tables(pg_url)) == (config, source, [])
    move_ledger(ws, pg_url)  # released (the file left behind): the move goes ahead


def test_held_locks_make_the_move_wait_then_refuse(sqlite_ws: Workspace, pg_url: str) -> None:
    ws = sqlite_ws
    config = ws.config_path.read_bytes()
    holder = sqlite3.connect(ws.sqlite_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a writer in the middle of its transaction
    try:
        with pytest.raises(StoreError, match=r"^another process has held the writer lock of sqlite:///.* for 0\.3 s "
                                             r"\(a run or a command writing\): try again when it has finished$"):
            move_ledger(ws, pg_url, wait_s=0.3)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    fd = os.open(ws.path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another command holding the workspace's lock (keystore, signed head)
        with pytest.raises(UsageError, match=r"^another fedgov command has held the lock on the workspace for 0\.3 s"):
            move_ledger(ws, pg_url, wait_s=0.3)
    finally:
        os.close(fd)
    assert ws.config_path.read_bytes() == config and pg_tables(pg_url) == []


def test_a_tampered_source_is_caught_by_the_check_and_nothing_moves(sqlite_ws: Workspace, pg_url: str) -> None:
    ws = sqlite_ws
    rewrite_entry(ws, 3, node_id="someone-else")  # leaf hash and cached tree recomputed: only the signature tells
    config, source = ws.config_path.read_bytes(), sha256(ws.sqlite_path)
    fails_with(["audit", "move", "--workspace", str(ws.path), "--to", pg_url],
               "error: the copy does not verify, nothing was moved (`fedgov audit verify` on the source tells the "
               "same): checkpoint #2 (tree size 41): signed root ... does not match the entries' root ... (entries "
               "rewritten, or a forked checkpoint)", code=1)
    assert pg_tables(pg_url) == []
    assert (ws.config_path.read_bytes(), sha256(ws.sqlite_path)) == (config, source)


def test_sigterm_during_the_copy_leaves_no_table_and_config_unchanged(sqlite_ws: Workspace, pg_url: str) -> None:
    """The move blocks inside its transaction (another session is creating the triggers' function); SIGTERM then."""
    import psycopg

    ws = sqlite_ws
    config = ws.config_path.read_bytes()
    plain = pg_url.replace("+psycopg", "")
    with psycopg.connect(plain) as blocker, psycopg.connect(plain, autocommit=True) as watch:
        blocker.execute("CREATE FUNCTION fedgov_reject_change() RETURNS trigger AS $$ BEGIN RETURN NULL; END $$ "
                        "LANGUAGE plpgsql")  # not committed: the move's CREATE OR REPLACE waits for it
        mover = subprocess.Popen(fedgov_argv("audit", "move", "--workspace", str(ws.path), "--to", pg_url),
                                 env=fedgov_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 15
            while not watch.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                                    "wait_event_type = 'Lock'").fetchone()[0]:
                assert time.monotonic() < deadline and mover.poll() is None, mover.communicate()
                time.sleep(0.05)
            assert watch.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                                 "pid <> pg_backend_pid() AND query LIKE '%CREATE OR REPLACE FUNCTION fedgov_reject_change%'").fetchone()[0] == 1
            mover.send_signal(signal.SIGTERM)
            out, err = mover.communicate(timeout=15)
        finally:
            if mover.poll() is None:
                mover.kill()
        blocker.rollback()
    assert (mover.returncode, err) == (143, "error: interrupted by SIGTERM\n"), out + err
    assert out.startswith("copying ")
    assert pg_tables(pg_url) == [] and ws.config_path.read_bytes() == config
    move_ledger(ws, pg_url)  # nothing left in the way


def test_a_writer_that_opened_before_the_move_refuses_to_write_to_the_old_database(sqlite_ws: Workspace,
                                                                                   pg_url: str) -> None:
    ws = sqlite_ws
    with Ledger.open(ws) as ledger:  # opened on SQLite, as a long-running process would have
        assert move(ws, pg_url).returncode == 0
        source, head = sha256(ws.sqlite_path), ws.head_path.read_bytes()
        expected = (f"the workspace's ledger moved to {pg_url} after this process opened sqlite:///{ws.sqlite_path}: "
                    "nothing was written; run the command again")
        with pytest.raises(StoreError, match=f"^{re.escape(expected)}$"):
            ledger.append([EntryDraft("round.reply", {}, "node:n1")], sign=True)
    assert sha256(ws.sqlite_path) == source and ws.head_path.read_bytes() == head
    assert verify_ledger(ws).entries == verify_ledger(Workspace(ws.path, f"sqlite:///{ws.sqlite_path}")).entries


def test_a_schema_1_ledger_keeps_its_version_and_every_tree_level(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from governance.ledger import store as store_module

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 1)
    ws = create_workspace(tmp_path / "ws", PASSPHRASE)  # as an older fedgov created it
    monkeypatch.undo()
    with Ledger.open(ws) as ledger:
        ledger.append([EntryDraft("round.reply", {"i": i}, "node:n1") for i in range(20)], sign=True)
    target = tmp_path / "moved.db"
    done = move_ledger(ws, f"sqlite:///{target}")
    assert done.rows["fedgov_tree_nodes"] == 10 + 5 + 2 + 1  # levels 1 to 4 of 21 leaves
    with sqlite3.connect(target) as db:
        assert db.execute("SELECT value FROM fedgov_meta WHERE key = 'schema_version'").fetchone() == ("1",)
    with Ledger.open(ws) as ledger:
        ledger.append([EntryDraft("round.reply", {"i": 20}, "node:n1")], sign=True)
    assert verify_ledger(ws).entries == 22


def test_the_deployment_guide_s_move_commands_run_as_written(sqlite_ws: Workspace, pg_url: str) -> None:
    from tests.deploy.deployment_doc import block_with

    script = block_with("bash", "fedgov audit move")
    for word, mine in (("postgresql+psycopg://fedgov@db.example.org:5432/fedgov_ledger", pg_url),
                       ("/srv/fedgov/ws", str(sqlite_ws.path))):
        assert word in script
        script = script.replace(word, mine)
    env = fedgov_env({"PATH": f"{Path(fedgov_argv()[0]).parent}{os.pathsep}{os.environ['PATH']}"})
    done = subprocess.run(["bash", "-e", "-u", "-o", "pipefail", "-c", script], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\nchecked 43 entries, 4 checkpoints" in done.stdout and sqlite_ws.config()["db_url"] == pg_url


def test_config_json_that_cannot_be_written_after_the_commit_takes_the_copy_back(sqlite_ws: Workspace,
                                                                                 pg_url: str) -> None:
    ws = sqlite_ws
    config = ws.config_path.read_bytes()
    blocker = ws.path / f"config.json.{os.getpid()}.tmp"  # where write_atomic puts the new config.json first
    blocker.mkdir()
    try:
        with pytest.raises(UsageError, match=rf"^cannot write {re.escape(str(ws.config_path))}: Is a directory; "
                                             "nothing was moved$"):
            move_ledger(ws, pg_url)
    finally:
        blocker.rmdir()
    assert ws.config_path.read_bytes() == config and pg_tables(pg_url) == []  # committed, then dropped again
    import psycopg

    with psycopg.connect(pg_url.replace("+psycopg", "")) as conn:  # the triggers' function it made went too
        assert conn.execute("SELECT to_regprocedure('fedgov_reject_change()')").fetchone() == (None,)
