"""`fedgov identity` and reading with `--identity`, as an auditor and an operator would type them."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from governance import entry_types as et
from governance.ledger import EntryDraft, Ledger
from governance.ledger.verify import verify_ledger
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE, run_fedgov

AUDITOR_PASS = {"FEDGOV_IDENTITY_PASSPHRASE": "auditor-secret"}


def ok(*args: str, env: dict | None = None) -> str:
    result = run_fedgov(*args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose ledger registered auditor `alice`, then got a reply and a consent of node n1."""
    from governance import consent_store
    from governance.clock import utc_now
    from governance.consent import ConsentRecord
    from governance.identities import Identity, write_identity
    from governance.ledger import create_workspace

    root = tmp_path_factory.mktemp("roles-cli")
    ws = create_workspace(root / ".fedgov", PASSPHRASE)
    alice = Identity.generate("alice", "auditor")
    write_identity(alice, root, AUDITOR_PASS["FEDGOV_IDENTITY_PASSPHRASE"])
    with Ledger.open(ws, PASSPHRASE) as ledger:
        ledger.register_identity(alice.public, "operator")
        ledger.append([EntryDraft(et.ROUND_REPLY, {"loss": 0.25}, "node:n1", run_id="r1", round=1, node_id="n1")],
                      sign=True)
        consent_store.grant(ledger, [ConsentRecord(
            record_id="c1", principal="n1", team="t1", purpose="screening", data_categories=["health"],
            privacy_notice_version="1", privacy_notice_hash="00" * 32, collection_method="cli",
            granted_at=utc_now())], "dpo")
    return root


@pytest.fixture
def with_auditor(template: Path, tmp_path: Path) -> tuple[Workspace, Path]:
    shutil.copytree(template, tmp_path / "copy")
    return Workspace(tmp_path / "copy" / ".fedgov"), tmp_path / "copy" / "alice.identity"


def test_identity_create_add_and_list(workspace: Workspace, tmp_path: Path) -> None:
    made = ok("identity", "create", "--role", "node-admin", "--node", "n7", "--name", "nina", "--out", str(tmp_path),
              env=AUDITOR_PASS)
    assert made.startswith("created nina (node-admin of node n7, ")
    added = ok("identity", "add", str(tmp_path / "nina.pub"), "--workspace", str(workspace.path))
    assert added.startswith("registered nina (node-admin of node n7, ") and "as entry seq 1; granted 0 data keys" in added
    [row] = json.loads(ok("identity", "list", "--format", "json", "--workspace", str(workspace.path),
                          env={"FEDGOV_PASSPHRASE": ""}))
    assert (row["name"], row["role"], row["node"], row["seq"]) == ("nina", "node-admin", "n7", 1)
    again = run_fedgov("identity", "add", str(tmp_path / "nina.pub"), "--workspace", str(workspace.path))
    assert again.returncode == 2 and again.stderr.startswith("error: identity nina (") and "already registered" in \
        again.stderr


def _short(payload: object) -> object:
    return payload if isinstance(payload, str) else payload.get("loss", payload.get("record", {}).get("record_id"))


def test_an_auditor_decrypts_with_her_key_alone_and_the_read_is_recorded(with_auditor: tuple[Workspace, Path]) -> None:
    ws, identity = with_auditor
    out = json.loads(ok("audit", "log", "--decrypt", "--node", "n1", "--format", "json", "--workspace", str(ws.path),
                        "--identity", str(identity), env={**AUDITOR_PASS, "FEDGOV_PASSPHRASE": ""}))
    assert [_short(r["payload"]) for r in out] == [0.25, "c1"]
    with Ledger.open_readonly(ws) as ledger:
        [read] = ledger.query(entry_type=et.AUDIT_READ)
    assert verify_ledger(ws).unsigned_tail == 1  # signed by alice; the operator's next checkpoint covers it
    [record] = json.loads(ok("audit", "log", "--decrypt", "--type", "audit.read", "--format", "json", "--workspace",
                             str(ws.path), "--identity", str(identity), env=AUDITOR_PASS))[:1]
    payload = record["payload"]
    assert record["seq"] == read.seq and payload["command"] == "audit log --decrypt" and payload["count"] == 2
    assert payload["filter"] == {"node": "n1"} and payload["reader"]["name"] == "alice"
    assert payload["reader"]["role"] == "auditor" and payload["read_at"].endswith("Z")


def test_the_operator_is_refused_sealed_payloads_in_one_line_and_its_read_is_recorded(
        with_auditor: tuple[Workspace, Path]) -> None:
    ws, _ = with_auditor
    result = run_fedgov("audit", "log", "--decrypt", "--type", "round.reply", "--workspace", str(ws.path))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == ("error: role operator may not read round.reply payloads (docs/access-policy.md); read with "
                             "an auditor identity (--identity)\n")
    listed = json.loads(ok("audit", "log", "--decrypt", "--node", "n1", "--format", "json", "--workspace",
                           str(ws.path)))
    assert [_short(r["payload"]) for r in listed] == ["sealed (auditors only)", "c1"]
    assert json.loads(ok("consent", "list", "--format", "json", "--workspace", str(ws.path)))[0]["record_id"] == "c1"
    with Ledger.open_readonly(ws) as ledger:
        assert len(ledger.query(entry_type=et.AUDIT_READ)) == 3  # the refused read, the listing, the consent list
    assert verify_ledger(ws).unsigned_tail == 0  # the operator's reads are signed at once


def test_a_ledger_without_an_auditor_reads_as_before_and_records_nothing(workspace: Workspace) -> None:
    with Ledger.open(workspace) as ledger:
        ledger.append([EntryDraft(et.ROUND_REPLY, {"loss": 1}, "node:n1", node_id="n1")], sign=True)
    out = json.loads(ok("audit", "log", "--decrypt", "--format", "json", "--workspace", str(workspace.path)))
    assert out[-1]["payload"] == {"loss": 1} and len(out) == 2
    db = sqlite3.connect(workspace.sqlite_path)
    assert db.execute("SELECT COUNT(*) FROM fedgov_entries").fetchone() == (2,)
    db.close()


def test_identity_create_refuses_what_is_not_a_role_in_one_line(tmp_path: Path) -> None:
    result = run_fedgov("identity", "create", "--role", "admin", "--name", "x", "--out", str(tmp_path), env=AUDITOR_PASS)
    assert result.returncode == 2
    assert result.stderr == "error: --role: role must be one of operator, auditor, node-admin, not 'admin'\n"
    result = run_fedgov("identity", "create", "--role", "node-admin", "--name", "x", "--out", str(tmp_path),
                        env=AUDITOR_PASS)
    assert result.returncode == 2 and result.stderr == "error: --role: the node of a node-admin must not be empty\n"
