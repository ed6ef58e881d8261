"""The ledger recipes of docs/deployment.md ("Beyond one machine"), run as the page writes them.

- The PostgreSQL commands (a role and a database of the ledger's own, `audit init --db-url`,
  `audit verify`), an auditor's SELECT-only role, and the backup with `pg_dump` restored with
  `pg_restore` into a new database, which verifies. Against a real server, in a database and
  roles of the test's own, dropped afterwards; skipped when no server answers.
- The SQLite backup (the signed head first, then the ledger with SQLite's backup command, the
  other files, Flower's database) restored into an empty directory: it verifies and takes new
  entries. Copied in the other order, the restored workspace refuses to write, as the page says.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from contextlib import closing
from pathlib import Path

import pytest

from tests.deploy.deployment_doc import recipe
from tests.fedgov_command import fedgov_env, run_fedgov

pytestmark = pytest.mark.timeout(120)
PG_ADMIN_URL = os.environ.get("FEDGOV_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
NOTICE = "a" * 64


def bash(script: str, **variables: str) -> subprocess.CompletedProcess:
    """Run a recipe in bash, stopping at the first failing command, with this environment's fedgov first on PATH."""
    env = fedgov_env({**variables, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                      "PGCONNECT_TIMEOUT": "5"})
    done = subprocess.run(["bash", "-e", "-u", "-o", "pipefail", "-c", script], capture_output=True, text=True,
                          env=env, timeout=90)
    assert done.returncode == 0, f"{script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return done


def grant(workspace: Path, node: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_fedgov("consent", "grant", "--workspace", str(workspace), "--node", node, "--team", "t", "--purpose",
                      "p", "--data-category", "x", "--notice-version", "1", "--notice-hash", NOTICE, env=env)


# -- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture
def server() -> dict[str, str]:
    """The admin connection's host, port and user, and names of the test's own; what it made is dropped after."""
    psycopg = pytest.importorskip("psycopg")
    for program in ("psql", "pg_dump", "pg_restore"):
        if shutil.which(program) is None:
            pytest.skip(f"{program} is not installed")
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as err:
        pytest.skip(f"no PostgreSQL server answers at {PG_ADMIN_URL}: {err}")
    info = admin.info
    tag = uuid.uuid4().hex[:10]
    names = {"host": info.host, "port": str(info.port), "user": info.user, "role": f"fedgov_doc_{tag}",
             "db": f"fedgov_doc_{tag}", "auditor": f"fedgov_doc_auditor_{tag}"}
    try:
        yield names
    finally:
        for db in (names["db"], f"{names['db']}_restored"):
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        for role in (names["auditor"], names["role"]):
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


def test_the_postgres_recipes_make_a_ledger_that_verifies_and_a_dump_that_restores(tmp_path: Path,
                                                                                 server: dict[str, str]) -> None:
    host, port, role, db = server["host"], server["port"], server["role"], server["db"]
    words = [("-h db.example.org", f"-h {host} -p {port}"), ("@db.example.org:5432/", f"@{host}:{port}/"),
             ("-U postgres", f"-U {server['user']}"), ("ROLE fedgov LOGIN", f"ROLE {role} LOGIN"),
             ("OWNER fedgov'", f"OWNER {role}'"), ("//fedgov@", f"//{role}@"), ("-U fedgov ", f"-U {role} "),
             ("fedgov_ledger_restored", f"{db}_restored"), ("fedgov_ledger", db),
             ("/srv/fedgov/ws", str(tmp_path / "ws"))]

    made = bash(recipe("bash", "CREATE ROLE fedgov LOGIN", words))
    assert "checked 1 entries, 1 checkpoints" in made.stdout
    ws = tmp_path / "ws"
    assert f"@{host}:{port}/{db}" in (ws / "config.json").read_text() and not (ws / "ledger.db").exists()
    assert grant(ws, "n1").returncode == 0

    # an auditor: a SELECT-only role, a directory with copies of config.json and trusted_keys, no keystore
    auditor, audit_dir = server["auditor"], tmp_path / "auditor"
    bash(f'psql -h {host} -p {port} -U {server["user"]} -d {db} -c "CREATE ROLE {auditor} LOGIN" '
         f'-c "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {auditor}"')
    audit_dir.mkdir(mode=0o700)
    for name in ("config.json", "trusted_keys"):
        shutil.copy(ws / name, audit_dir / name)
    audited = run_fedgov("audit", "verify", "--require-signed", "--workspace", str(audit_dir),
                         env={"FEDGOV_DB_URL": f"postgresql+psycopg://{auditor}@{host}:{port}/{db}"})
    assert audited.returncode == 0 and audited.stdout.startswith("checked 2 entries"), audited.stderr

    backups, restored = tmp_path / "backup", tmp_path / "ws-restored"
    backups.mkdir(mode=0o700)
    shutil.copytree(ws, restored)  # the workspace's files first (its signed head), as the page's backup does
    bash(recipe("bash", "pg_dump -h", words), B=str(backups))  # then the database
    assert grant(ws, "n2").returncode == 0  # after the backup: not in what is restored
    checked = bash(recipe("bash", "pg_restore -h", words), B=str(backups), R=str(restored))
    assert "\nchecked 2 entries, 2 checkpoints" in checked.stdout, checked.stdout  # after psql's CREATE DATABASE
    # the restored database keeps fedgov's triggers
    refused = subprocess.run(["psql", "-h", host, "-p", port, "-U", server["user"], "-d", f"{db}_restored", "-c",
                              "DELETE FROM fedgov_entries"], capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "append-only" in refused.stderr, refused.stderr


# -- SQLite and the workspace files ---------------------------------------------------------


def coordinator_workspace(root: Path) -> Path:
    """A workspace with one entry past genesis, and a stand-in for Flower's state database beside it."""
    ws = root / "srv" / "ws"
    assert run_fedgov("audit", "init", "--workspace", str(ws)).returncode == 0
    assert grant(ws, "n1").returncode == 0
    (ws / "coordinator").mkdir(mode=0o700)
    with closing(sqlite3.connect(ws / "coordinator" / "state.db")) as state:  # in WAL mode, as Flower keeps it
        state.execute("PRAGMA journal_mode = WAL")
        state.execute("CREATE TABLE node (name TEXT)")
        state.execute("INSERT INTO node VALUES ('radiology')")
        state.commit()
    return ws


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the sqlite3 program is not installed")
def test_the_backup_recipe_restores_a_workspace_that_verifies_and_takes_new_entries(tmp_path: Path) -> None:
    ws = coordinator_workspace(tmp_path)
    words = [("/srv/fedgov/ws-restored", str(tmp_path / "restored")), ("/srv/fedgov/ws", str(ws)),
             ("/var/backups/fedgov", str(tmp_path / "backups"))]
    script = recipe("bash", "sqlite3 ledger.db", words)
    assert script.index("cp -p latest_checkpoint") < script.index("sqlite3 ledger.db")  # the head first
    bash(script)
    (backup,) = (tmp_path / "backups").iterdir()
    assert grant(ws, "n2").returncode == 0  # after the backup

    checked = bash(recipe("bash", "R=/srv/fedgov/ws-restored", words), B=str(backup))
    restored = tmp_path / "restored"
    assert checked.stdout.startswith("checked 2 entries"), checked.stdout
    assert sorted(p.name for p in restored.iterdir()) == sorted(
        ["archives", "config.json", "coordinator", "keystore.json", "latest_checkpoint", "ledger.db", "trusted_keys"])
    with closing(sqlite3.connect(restored / "coordinator" / "state.db")) as state:
        assert state.execute("SELECT name FROM node").fetchall() == [("radiology",)]
    assert grant(restored, "n3").returncode == 0
    assert run_fedgov("audit", "verify", "--require-signed", "--workspace", str(restored)).stdout.startswith(
        "checked 3 entries")


def test_a_backup_taken_in_the_wrong_order_restores_a_workspace_that_refuses_to_write(tmp_path: Path) -> None:
    ws = coordinator_workspace(tmp_path)
    restored = tmp_path / "restored"
    restored.mkdir(mode=0o700)
    with closing(sqlite3.connect(ws / "ledger.db")) as live, closing(sqlite3.connect(restored / "ledger.db")) as copy:
        live.backup(copy)  # the ledger first ...
    assert grant(ws, "n2").returncode == 0  # ... a write in between ...
    for name in ("latest_checkpoint", "keystore.json", "trusted_keys", "config.json"):  # ... the head after
        shutil.copy2(ws / name, restored / name)
    (restored / "archives").mkdir()
    verified = run_fedgov("audit", "verify", "--workspace", str(restored))
    assert verified.returncode == 1 and "the ledger was rolled back or truncated" in verified.stderr, verified.stderr
    refused = grant(restored, "n3")
    assert refused.returncode == 1 and refused.stderr.startswith("error: refusing to sign: "), refused.stderr
