"""`fedgov privacy budget` as an operator and an auditor type it: recomputed from the releases, reads recorded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from governance import entry_types as et
from governance.ledger import EntryDraft, Ledger
from governance.privacy.accounting import epsilon
from governance.privacy.events import Release
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE, run_fedgov

AUDITOR_PASS = {"FEDGOV_IDENTITY_PASSPHRASE": "auditor-secret"}


def _release(run: str, round_: int, participants: tuple[str, ...]) -> EntryDraft:
    release = Release(run, round_, "server-fixed", 1.0, 1.0, 1e-5, 3, len(participants), participants, {"n2": 5.0})
    # epsilon_after is deliberately wrong: the command must recompute, never read it
    return EntryDraft(et.ROUND_PRIVACY, release.payload({n: 0.0 for n in participants}), et.run_scope(run),
                      run_id=run, round=round_)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs' releases: n1 in three, n2 in one, n3 registered but in none; then an auditor."""
    from governance.identities import Identity, write_identity
    from governance.ledger import create_workspace

    root = tmp_path_factory.mktemp("privacy-cli")
    ws = create_workspace(root / ".fedgov", PASSPHRASE)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        ledger.append([EntryDraft(et.NODE_REGISTERED, {"node_id": "n3"}, et.REGISTRY_SCOPE, node_id="n3")])
        ledger.append([_release("r1", 1, ("n1", "n2")), _release("r1", 2, ("n1",)), _release("r2", 1, ("n1",))],
                      sign=True)
    shutil.copytree(root / ".fedgov", root / "no-auditor")
    alice = Identity.generate("alice", "auditor")
    write_identity(alice, root, AUDITOR_PASS["FEDGOV_IDENTITY_PASSPHRASE"])
    with Ledger.open(ws, PASSPHRASE) as ledger:
        ledger.register_identity(alice.public, "operator")
    return root


def _budget(ws: Path, *args: str, env: dict | None = None) -> list[dict]:
    result = run_fedgov("privacy", "budget", "--format", "json", "--workspace", str(ws), *args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_spent_and_remaining_are_recomputed_from_every_release(template):
    rows = {r["node_id"]: r for r in _budget(template / "no-auditor")}
    assert rows["n1"]["releases"] == 3 and rows["n1"]["runs"] == ["r1", "r2"]
    assert rows["n1"]["epsilon_spent"] == pytest.approx(epsilon([1.0] * 3, 1e-5))
    assert rows["n2"]["epsilon_spent"] == pytest.approx(epsilon([1.0], 1e-5))  # not the recorded 0.0
    assert rows["n2"]["remaining"] == pytest.approx(5.0 - rows["n2"]["epsilon_spent"])
    assert rows["n3"]["releases"] == 0 and rows["n3"]["epsilon_spent"] == 0.0


def test_a_run_and_a_node_narrow_the_answer(template):
    [row] = _budget(template / "no-auditor", "--run", "r2", "--node", "n1")
    assert row["releases"] == 1 and row["runs"] == ["r2"]


@pytest.mark.parametrize("args,says", [(("--node", "n11"), "--node 'n11' names nothing this ledger has recorded"),
                                       (("--run", "r11"), "--run 'r11' names nothing this ledger has recorded")])
def test_an_unknown_node_or_run_is_one_line_naming_the_closest(template, args, says):
    result = run_fedgov("privacy", "budget", "--workspace", str(template / "no-auditor"), *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"error: {says}") and "did you mean" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_once_a_ledger_has_an_auditor_every_read_is_recorded(template, tmp_path):
    shutil.copytree(template, tmp_path / "copy")
    ws = tmp_path / "copy" / ".fedgov"
    assert len(_budget(ws)) == 3  # round.privacy is a coordinator decision: the operator reads it
    assert len(_budget(ws, "--identity", str(tmp_path / "copy" / "alice.identity"),
                       env={**AUDITOR_PASS, "FEDGOV_PASSPHRASE": ""})) == 3
    logged = run_fedgov("audit", "log", "--decrypt", "--type", "audit.read", "--format", "json", "--workspace",
                        str(ws), "--identity", str(tmp_path / "copy" / "alice.identity"), env=AUDITOR_PASS)
    reads = [r["payload"] for r in json.loads(logged.stdout)]
    assert [(r["command"], r["reader"]["role"]) for r in reads][:2] == [("privacy budget", "operator"),
                                                                        ("privacy budget", "auditor")]
    with Ledger.open(Workspace(template / "no-auditor"), PASSPHRASE) as ledger:
        assert ledger.query(entry_type=et.AUDIT_READ) == []
