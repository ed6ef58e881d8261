"""`fedgov consent`: grant, list, show and revoke through the real command."""

from __future__ import annotations

import csv
import io
import json

import pytest

from governance.ledger import Ledger
from tests.fedgov_command import run_fedgov

NOTICE = "a" * 64


def grant(ws, *extra: str, node: str = "node-a", purpose: str = "screening"):
    return run_fedgov("consent", "grant", "--workspace", str(ws.path), "--node", node, "--team", "radiology",
                      "--purpose", purpose, "--data-category", "imaging", "--notice-version", "v1",
                      "--notice-hash", NOTICE, *extra)


def listing(ws, *extra: str) -> list[dict]:
    result = run_fedgov("consent", "list", "--workspace", str(ws.path), "--format", "json", *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def ledger_size(ws) -> int:
    with Ledger.open_readonly(ws) as ledger:
        return ledger.size()


def test_grant_then_list_shows_a_valid_record(workspace):
    result = grant(workspace, "--record-id", "c-1")
    assert result.returncode == 0 and "granted c-1 to node-a" in result.stdout
    [row] = listing(workspace)
    assert row["record_id"] == "c-1" and row["state"] == "valid" and row["data_categories"] == ["imaging"]


def test_revoke_marks_the_record_withdrawn_and_keeps_its_history(workspace):
    grant(workspace, "--record-id", "c-1")
    assert run_fedgov("consent", "revoke", "c-1", "--workspace", str(workspace.path),
                      "--reason", "team left the study").returncode == 0
    [row] = listing(workspace)
    assert row["state"] == "withdrawn" and row["withdrawn_at"]
    shown = json.loads(run_fedgov("consent", "show", "c-1", "--workspace", str(workspace.path),
                                  "--format", "json").stdout)[0]
    assert [h["event"] for h in shown["history"]] == ["consent.granted", "consent.withdrawn"]
    assert shown["history"][1]["reason"] == "team left the study"


def test_list_filters_by_node_and_purpose(workspace):
    grant(workspace, node="node-a", purpose="screening")
    grant(workspace, node="node-b", purpose="research")
    assert [r["principal"] for r in listing(workspace, "--node", "node-b")] == ["node-b"]
    assert [r["purpose"] for r in listing(workspace, "--purpose", "screening")] == ["screening"]


def test_list_as_csv_has_one_row_per_record(workspace):
    grant(workspace)
    grant(workspace, node="node-b")
    result = run_fedgov("consent", "list", "--workspace", str(workspace.path), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["principal"] for r in rows] == ["node-a", "node-b"]


def test_an_expiry_before_the_grant_is_refused(workspace):
    result = grant(workspace, "--expires-at", "2000-01-02T00:00:00Z")
    assert result.returncode == 2 and "not after it was granted" in result.stderr


def test_the_notice_file_is_hashed_into_the_record(workspace, tmp_path):
    notice = tmp_path / "notice.txt"
    notice.write_text("We train a screening model on your images.")
    result = run_fedgov("consent", "grant", "--workspace", str(workspace.path), "--node", "n", "--team", "t",
                        "--purpose", "p", "--data-category", "imaging", "--notice-version", "v2",
                        "--notice-file", str(notice))
    assert result.returncode == 0
    import hashlib

    assert listing(workspace)[0]["privacy_notice_hash"] == hashlib.sha256(notice.read_bytes()).hexdigest()


@pytest.mark.parametrize("args,message", [
    (["--notice-hash", "zz"], "privacy_notice_hash must be a SHA-256 hex digest"),
    (["--record-id", "c-1"], "consent record 'c-1' is already granted"),
])
def test_bad_grants_are_one_line_and_write_nothing(workspace, args, message):
    grant(workspace, "--record-id", "c-1")
    before = ledger_size(workspace)
    base = ["consent", "grant", "--workspace", str(workspace.path), "--node", "n", "--team", "t", "--purpose",
            "p", "--data-category", "x", "--notice-version", "v1"]
    if "--notice-hash" not in args:
        base += ["--notice-hash", NOTICE]
    result = run_fedgov(*base, *args)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line
    assert ledger_size(workspace) == before


def test_revoking_an_unknown_record_is_one_line(workspace):
    result = run_fedgov("consent", "revoke", "nope", "--workspace", str(workspace.path))
    assert result.returncode == 2
    assert result.stderr.strip() == "error: no consent record 'nope'; list them with `fedgov consent list`"


def test_revoking_twice_is_refused_and_writes_nothing(workspace):
    grant(workspace, "--record-id", "c-1")
    run_fedgov("consent", "revoke", "c-1", "--workspace", str(workspace.path))
    before = ledger_size(workspace)
    result = run_fedgov("consent", "revoke", "c-1", "--workspace", str(workspace.path))
    assert result.returncode == 2 and "already withdrawn" in result.stderr
    assert ledger_size(workspace) == before


def test_grant_without_a_notice_is_refused(workspace):
    result = run_fedgov("consent", "grant", "--workspace", str(workspace.path), "--node", "n", "--team", "t",
                        "--purpose", "p", "--data-category", "x", "--notice-version", "v1")
    assert result.returncode == 2
    assert "--notice-file FILE or --notice-hash SHA256" in result.stderr


def test_a_wrong_passphrase_is_one_line(workspace):
    result = run_fedgov("consent", "list", "--workspace", str(workspace.path),
                        env={"FEDGOV_PASSPHRASE": "wrong"})
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "passphrase" in line
