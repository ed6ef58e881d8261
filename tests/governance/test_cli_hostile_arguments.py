"""Any `fedgov` command, given any argument, does its job or prints one line and exits 1 or 2 (issue 8, item 10).

Every command that takes a value is fed hostile values: bytes that are not UTF-8 (as
Python hands them over: surrogates), NaN, huge numbers, control characters, missing
files, directories, /proc. Commands run in this process through the real entry point
(`cli.commands.run`), which keeps the test fast; they find a small real workspace.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from cli.commands import run
from governance import consent_store
from governance.ledger import Ledger, create_workspace
from simulations.enroll import simulation_consent
from tests.fedgov_command import PASSPHRASE

HOSTILE = ["\udcff\udcfe", "nan", "1e999", "-1", "9" * 400, "\x1b[31mred", "two\nlines", "MISSING",
           "/proc", "", " ", "*", "DIRECTORY"]

COMMANDS = [
    ["audit", "verify", "--trusted-key", "{}"], ["audit", "verify", "--known-checkpoint", "{}"],
    ["audit", "verify", "--bundle", "{}"], ["audit", "log", "--node", "{}"], ["audit", "log", "--type", "{}"],
    ["audit", "log", "--run", "{}"], ["audit", "log", "--round", "{}"], ["audit", "log", "--limit", "{}"],
    ["audit", "log", "--format", "{}"], ["audit", "export", "--out", "{}"], ["audit", "checkpoint", "--out", "{}"],
    ["audit", "shred", "{}", "--actor", "dpo", "--reason", "r"], ["audit", "repair-cache", "--actor", "{}"],
    ["audit", "init", "--db-url", "{}", "--workspace", "NEWWS"],
    ["consent", "grant", "--node", "{}", "--team", "t", "--purpose", "p", "--data-category", "d",
     "--notice-version", "1", "--notice-hash", hashlib.sha256(b"n").hexdigest()],
    ["consent", "grant", "--node", "n1", "--team", "t", "--purpose", "p", "--data-category", "d",
     "--notice-version", "1", "--notice-file", "{}"],
    ["consent", "grant", "--node", "n1", "--team", "t", "--purpose", "p", "--data-category", "d",
     "--notice-version", "1", "--notice-hash", "{}"],
    ["consent", "grant", "--node", "n1", "--team", "t", "--purpose", "p", "--data-category", "d",
     "--notice-version", "1", "--notice-hash", hashlib.sha256(b"n").hexdigest(), "--expires-at", "{}"],
    ["consent", "revoke", "{}"], ["consent", "show", "{}"], ["consent", "list", "--node", "{}"],
    ["consent", "list", "--purpose", "{}"], ["lineage", "show", "{}"], ["lineage", "affected", "--node", "{}"],
    ["lineage", "export", "--out", "{}"], ["model", "get", "{}", "--out", "m.pt"],
    ["model", "get", "ab", "--out", "{}"],
    ["sim", "run", "--rounds", "0", "--purpose", "{}"], ["sim", "run", "--rounds", "0", "--operator", "{}"],
    ["sim", "run", "--rounds", "0", "--faults", "{}"], ["sim", "run", "--rounds", "0", "--revoke", "{}"],
    ["sim", "run", "--rounds", "0", "--no-consent", "{}"], ["sim", "run", "--nodes", "{}", "--rounds", "0"],
    ["sim", "run", "--rounds", "0", "--alpha", "{}"], ["sim", "run", "--rounds", "0", "--ray-address", "{}"],
    ["sim", "run", "--rounds", "0", "--retrain-trigger", "{}"],
    ["monitor", "check", "--policy", "{}"], ["monitor", "check", "--policy", "policy.toml", "--run", "{}"],
    ["monitor", "watch", "--policy", "{}", "--interval", "1"],
    ["monitor", "watch", "--policy", "policy.toml", "--interval", "{}", "--max-checks", "1"],
    ["monitor", "watch", "--policy", "policy.toml", "--interval", "1", "--max-checks", "{}"],
]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile-args")
    ws = create_workspace(root / ".fedgov", PASSPHRASE)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        consent_store.grant(ledger, [simulation_consent("sim-0000", "team-a", "simulation")], actor="test")
    (root / "DIRECTORY").mkdir()
    (root / "policy.toml").write_text("[triggers]\ndrift_share = 0.3\n")
    return root


@pytest.mark.parametrize("template", COMMANDS, ids=[" ".join(c[:3]) for c in COMMANDS])
def test_hostile_values_give_one_line_or_do_the_job(template, home, monkeypatch, capsys):
    monkeypatch.chdir(home)
    monkeypatch.setenv("FEDGOV_HOME", str(home / ".fedgov"))
    monkeypatch.setenv("FEDGOV_PASSPHRASE", PASSPHRASE)
    for value in HOSTILE:
        value = {"DIRECTORY": str(home / "DIRECTORY"), "MISSING": str(home / "missing" / "dir" / "x")}.get(value, value)
        argv = ["fedgov", *(value if part == "{}" else str(home / "new-ws") if part == "NEWWS" else part
                             for part in template)]
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as ended:
            run()
        out, err = capsys.readouterr()
        code = ended.value.code
        where = f"{argv[1:]!r} -> exit {code}, stderr {err!r}"
        assert code in (0, 1, 2, None), where
        assert "Traceback" not in err + out, where
        assert err.count("\n") <= 1, where
        if code:
            assert err.startswith("error: "), where


def test_a_corrupted_database_page_is_one_line(tmp_path, monkeypatch, capsys):
    ws = create_workspace(tmp_path / ".fedgov", PASSPHRASE)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        consent_store.grant(ledger, [simulation_consent(f"sim-{i:04d}", "t", "simulation") for i in range(300)],
                            actor="test")
    data = bytearray(ws.sqlite_path.read_bytes())
    data[8192:] = b"\xa5" * (len(data) - 8192)  # every page but the schema's, scribbled over
    ws.sqlite_path.write_bytes(bytes(data))
    monkeypatch.setenv("FEDGOV_PASSPHRASE", PASSPHRASE)
    for argv in (["audit", "log", "--workspace", str(ws.path)],
                 ["lineage", "affected", "--node", "sim-0001", "--workspace", str(ws.path)]):
        monkeypatch.setattr(sys, "argv", ["fedgov", *argv])
        with pytest.raises(SystemExit) as ended:
            run()
        _, err = capsys.readouterr()
        assert ended.value.code in (1, 2) and err.startswith("error: ") and err.count("\n") == 1, err


def test_model_get_into_a_missing_directory_is_one_line(home, monkeypatch, capsys):
    monkeypatch.setenv("FEDGOV_HOME", str(home / ".fedgov"))
    monkeypatch.setenv("FEDGOV_PASSPHRASE", PASSPHRASE)
    monkeypatch.setattr(sys, "argv", ["fedgov", "model", "get", "ab", "--out", "/nonexistent/m.pt"])
    with pytest.raises(SystemExit) as ended:
        run()
    _, err = capsys.readouterr()
    assert ended.value.code == 2 and err == "error: --out /nonexistent/m.pt: /nonexistent is not an existing directory\n"
