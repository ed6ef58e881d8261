"""The workspace keeps its secrets to its owner, reads from read-only media, and fails cleanly (item 8)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from governance.archive import archive_model
from governance.ledger import EntryDraft, Ledger, create_workspace
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE, fedgov_argv, fedgov_env, run_fedgov
from tests.governance.attacks import fails_with, succeeds


def _modes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): oct(stat.S_IMODE(p.stat().st_mode)) for p in (root, *root.rglob("*"))}


def test_workspace_is_0700_and_every_file_in_it_0600(workspace: Workspace) -> None:
    with Ledger.open(workspace) as ledger:
        ledger.append([EntryDraft("round.reply", {"i": 1}, "node:n1")], sign=True)
        archive_model(ledger, [("w", np.zeros(3, dtype=np.float32))])
        modes = _modes(workspace.path)  # with the connection open: -wal and -shm exist
    assert {"ledger.db-wal", "ledger.db-shm", "latest_checkpoint", "keystore.json", "trusted_keys",
            "config.json"} <= modes.keys()
    assert any(name.startswith("archives/") for name in modes)
    wrong = {name: mode for name, mode in modes.items()
             if mode != ("0o700" if (workspace.path / name).is_dir() else "0o600")}
    assert wrong == {}


def test_a_workspace_made_earlier_is_tightened_by_the_next_writer(workspace: Workspace) -> None:
    os.chmod(workspace.path, 0o755)
    os.chmod(workspace.trust_path, 0o644)
    os.chmod(workspace.sqlite_path, 0o644)
    Ledger.open(workspace).close()
    assert set(_modes(workspace.path).values()) <= {"0o700", "0o600"}


def test_init_refuses_a_password_in_the_database_url(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    fails_with(["audit", "init", "--workspace", str(ws), "--db-url", "postgresql+psycopg://fedgov:s3cret@db/ledger"],
               "error: --db-url holds a password, which the workspace would keep in config.json: remove it and give it "
               "to the driver through PGPASSWORD or a PGPASSFILE", code=2)
    assert not ws.exists()


def test_a_postgres_workspace_config_names_the_server_without_a_password(tmp_path: Path, pg_url: str) -> None:
    ws = create_workspace(tmp_path / "ws", PASSPHRASE, db_url=pg_url)
    config = json.loads(ws.config_path.read_text(encoding="utf-8"))
    assert config["db_url"] == pg_url and ":" not in pg_url.split("@")[0].split("//")[1]


def test_init_takes_the_database_from_fedgov_db_url_as_the_readme_says(tmp_path: Path, pg_url: str) -> None:
    ws = tmp_path / "ws"
    result = run_fedgov("audit", "init", "--workspace", str(ws), env={"FEDGOV_DB_URL": pg_url})
    assert result.returncode == 0, result.stderr
    assert json.loads((ws / "config.json").read_text(encoding="utf-8"))["db_url"] == pg_url
    assert not (ws / "ledger.db").exists()
    assert run_fedgov("audit", "verify", "--workspace", str(ws)).returncode == 0  # found without the variable


def test_failed_init_against_an_unreachable_server_leaves_nothing(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    fails_with(["audit", "init", "--workspace", str(ws), "--db-url", "postgresql+psycopg://postgres@127.0.0.1:9/x"],
               "error: cannot create the ledger in postgresql+psycopg://postgres@127.0.0.1:9/x: connection failed: ...",
               code=2)
    assert not ws.exists()


def test_failed_init_in_an_existing_directory_removes_only_what_it_made(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "README").write_text("the operator's own file\n")
    fails_with(["audit", "init", "--workspace", str(ws), "--db-url", "postgresql+psycopg://postgres@127.0.0.1:9/x"],
               "error: cannot create the ledger in ...", code=2)
    assert sorted(p.name for p in ws.iterdir()) == ["README"]


def test_a_keystore_that_asks_for_gigabytes_is_refused_at_once(workspace: Workspace) -> None:
    document = json.loads(workspace.keystore_path.read_text(encoding="utf-8"))
    document["kdf"]["n"] = 2**23  # 8 GiB with r = 8
    workspace.keystore_path.write_text(json.dumps(document), encoding="utf-8")
    start = time.perf_counter()
    fails_with(["audit", "checkpoint", "--workspace", str(workspace.path)],
               f"error: {workspace.keystore_path}: scrypt parameters n=8388608, r=8, p=1 are out of bounds (fedgov "
               "reads n a power of two up to 2^18, r up to 16, p up to 4, at most 256 MiB)", code=2)
    assert time.perf_counter() - start < 10


def test_a_keystore_that_is_a_json_array_is_one_line(workspace: Workspace) -> None:
    workspace.keystore_path.write_text("[1, 2]", encoding="utf-8")
    fails_with(["audit", "checkpoint", "--workspace", str(workspace.path)],
               f"error: {workspace.keystore_path} is not a fedgov keystore of version 1", code=2)


# -- read-only ------------------------------------------------------------------------------

def _read_only_mount_works() -> bool:
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _read_only_mount_works(), reason="needs `unshare -m` (a mount namespace) to mount read-only")
@pytest.mark.parametrize("writer_open", [False, True], ids=["closed-copy", "copy-with-wal"])
def test_verify_and_listings_work_on_a_read_only_workspace(workspace: Workspace, tmp_path: Path,
                                                           writer_open: bool) -> None:
    with Ledger.open(workspace) as ledger:
        ledger.append([EntryDraft("round.reply", {"i": i}, "node:n1") for i in range(5)], sign=True)
        mounted = tmp_path / "auditor"
        shutil.copytree(workspace.path, mounted)  # with the writer open, the copy holds -wal and -shm
    if not writer_open:
        shutil.rmtree(mounted)
        shutil.copytree(workspace.path, mounted)
    assert (mounted / "ledger.db-wal").exists() == writer_open
    commands = [["audit", "verify", "--require-signed"], ["audit", "log", "--format", "json"],
                ["audit", "log", "--decrypt", "--format", "csv"], ["consent", "list"],
                ["audit", "export", "--out", str(tmp_path / f"bundle-{writer_open}")]]
    script = ["set -e", f"mount --bind {mounted} {mounted}", f"mount -o remount,bind,ro {mounted}",
              f"! touch {mounted}/probe 2>/dev/null"]
    script += [" ".join(fedgov_argv(*cmd, "--workspace", str(mounted))) + " >/dev/null" for cmd in commands]
    result = subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", "\n".join(script)],
                            capture_output=True, text=True, timeout=120,
                            env=fedgov_env())
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in mounted.iterdir()) == sorted(p.name for p in workspace.path.iterdir()) \
        or writer_open


def test_verify_and_listings_work_on_a_postgres_database_opened_read_only(tmp_path: Path, pg_url: str) -> None:
    """An auditor's database role that may only SELECT."""
    import uuid

    import psycopg

    ws = create_workspace(tmp_path / "ws", PASSPHRASE, db_url=pg_url)
    with Ledger.open(ws) as ledger:
        ledger.append([EntryDraft("round.reply", {"i": i}, "node:n1") for i in range(5)], sign=True)
    role = f"fedgov_auditor_{uuid.uuid4().hex[:8]}"
    admin_url = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
    try:
        auditor = {"FEDGOV_DB_URL": pg_url.replace("postgres@", f"{role}@", 1)}
        assert succeeds("audit", "verify", "--require-signed", "--workspace", str(ws.path), env=auditor).startswith(
            "checked 6 entries")
        assert json.loads(succeeds("audit", "log", "--decrypt", "--format", "json", "--workspace", str(ws.path),
                                   env=auditor))[-1]["payload"] == {"i": 4}
        succeeds("consent", "list", "--workspace", str(ws.path), env=auditor)
        succeeds("audit", "export", "--out", str(tmp_path / "bundle"), "--workspace", str(ws.path), env=auditor)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP OWNED BY "{role}"')
            admin.execute(f'DROP ROLE "{role}"')


def test_init_never_overwrites_a_keystore(workspace: Workspace) -> None:
    keystore = workspace.keystore_path.read_bytes()
    workspace.config_path.unlink()  # the file `init` looks for first, gone: the keystore must still be safe
    fails_with(["audit", "init", "--workspace", str(workspace.path)],
               f"error: {workspace.keystore_path} already exists: `fedgov audit init` makes a new workspace and never "
               "overwrites one (move the old one away first)", code=2)
    assert workspace.keystore_path.read_bytes() == keystore


def test_init_refuses_a_password_in_the_url_query(tmp_path: Path) -> None:
    fails_with(["audit", "init", "--workspace", str(tmp_path / "ws"), "--db-url",
                "postgresql+psycopg://fedgov@db/ledger?password=s3cret"],
               "error: --db-url holds a password, which the workspace would keep in config.json: remove it and give it "
               "to the driver through PGPASSWORD or a PGPASSFILE", code=2)


def test_errors_never_print_a_password_from_the_url(workspace: Workspace) -> None:
    result = run_fedgov("audit", "verify", "--workspace", str(workspace.path),
                        env={"FEDGOV_DB_URL": "postgresql+psycopg://postgres:s3cret@127.0.0.1:9/x?password=s3cret"})
    assert result.returncode == 2 and "s3cret" not in result.stderr + result.stdout


def test_init_with_an_unsupported_database_is_one_line(tmp_path: Path) -> None:
    fails_with(["audit", "init", "--workspace", str(tmp_path / "ws"), "--db-url", "mysql://root@127.0.0.1/test"],
               "error: --db-url: fedgov keeps its ledger in SQLite or PostgreSQL, not mysql", code=2)
    assert not (tmp_path / "ws").exists()

