"""User errors give one clear line, a non-zero exit, and write nothing; workspace discovery."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from governance.errors import UsageError
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE, run_fedgov


def _snapshot(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _fails_cleanly(ws: Workspace, args: list[str], needle: str, env: dict[str, str] | None = None) -> None:
    before = _snapshot(ws.path)
    result = run_fedgov(*args, "--workspace", str(ws.path), env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and needle in result.stderr
    assert _snapshot(ws.path) == before


def test_wrong_passphrase_is_one_line_and_writes_nothing(workspace: Workspace) -> None:
    _fails_cleanly(workspace, ["audit", "checkpoint"], "wrong passphrase", env={"FEDGOV_PASSPHRASE": "nope"})


def test_missing_keystore_is_one_line_and_writes_nothing(workspace: Workspace) -> None:
    workspace.keystore_path.unlink()
    _fails_cleanly(workspace, ["audit", "shred", "node:a", "--actor", "a", "--reason", "r"], "no keystore")


def test_corrupted_db_file_is_one_line_and_writes_nothing(workspace: Workspace) -> None:
    for leftover in workspace.path.glob("ledger.db-*"):
        leftover.unlink()
    workspace.sqlite_path.write_bytes(b"this is not a database" * 100)
    _fails_cleanly(workspace, ["audit", "verify"], "corrupt")


def test_unsupported_schema_version_is_one_line_and_writes_nothing(workspace: Workspace) -> None:
    db = sqlite3.connect(workspace.sqlite_path)
    db.execute("UPDATE fedgov_meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    _fails_cleanly(workspace, ["audit", "log"], "schema version 99 is not supported")


def test_passphrase_file_opens_the_keystore(workspace: Workspace, tmp_path: Path) -> None:
    secret = tmp_path / "pass"
    secret.write_text(f"{PASSPHRASE}\n")
    result = run_fedgov("audit", "checkpoint", "--workspace", str(workspace.path), "--passphrase-file", str(secret),
                        env={"FEDGOV_PASSPHRASE": ""})
    assert result.returncode == 0 and result.stdout.startswith("fedgov.ledger/")


def test_cli_init_log_and_verify_round_trip(tmp_path: Path) -> None:
    assert run_fedgov("audit", "init", cwd=tmp_path).returncode == 0
    assert (tmp_path / ".fedgov" / "trusted_keys").is_file()
    log = run_fedgov("audit", "log", "--format", "json", "--decrypt", cwd=tmp_path)
    assert '"entry_type": "ledger.created"' in log.stdout
    verify = run_fedgov("audit", "verify", cwd=tmp_path / ".fedgov")
    assert verify.returncode == 0 and verify.stdout.startswith("checked 1 entries, 1 checkpoints, root ")


def test_discovery_prefers_flag_then_env_then_nearest_parent(workspace: Workspace, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert Workspace.discover().path == workspace.path
    monkeypatch.setenv("FEDGOV_HOME", str(tmp_path / "elsewhere"))
    assert Workspace.discover(must_exist=False).path == tmp_path / "elsewhere"
    assert Workspace.discover(workspace.path).path == workspace.path


def test_discovery_without_a_workspace_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="fedgov audit init"):
        Workspace.discover()
    assert Workspace.discover(must_exist=False).path == tmp_path.resolve() / ".fedgov"
