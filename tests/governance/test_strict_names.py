"""Names follow one grammar, and a query for what the ledger never recorded is an error (issue 8, item 11)."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from governance.names import InvalidNameError, check_name
from governance.workspace import Workspace
from tests.fedgov_command import run_fedgov
from tests.governance.attacks import fails_with, succeeds

NOTICE = hashlib.sha256(b"notice").hexdigest()


@pytest.mark.parametrize("name, why", [
    ("sim-0001 ", "starts or ends with white space"),
    (" sim-0001", "starts or ends with white space"),
    ("sim\n0001", "holds a control character (U+000A)"),
    ("sim-\u202e1000", "holds a format (bidi or zero-width) character (U+202E)"),
    ("sim-\u200b0001", "holds a format (bidi or zero-width) character (U+200B)"),
    ("sim-\udcff", "holds bytes that are not UTF-8 (U+DCFF)"),
    ("n" * 129, "is longer than 128 characters"),
    ("", "must not be empty"),
])
def test_a_name_outside_the_grammar_is_refused_saying_why(name, why):
    import re

    with pytest.raises(InvalidNameError, match=re.escape(why)):
        check_name(name, "--node")


def test_names_that_are_names_pass():
    assert check_name("cardiologie-équipe 2", "--team") == "cardiologie-équipe 2"


def _grant(ws: Workspace, node: str | bytes) -> subprocess.CompletedProcess:
    return run_fedgov(b"consent", b"grant", b"--node", node if isinstance(node, bytes) else node.encode(),
                      b"--team", b"t", b"--purpose", b"p", b"--data-category", b"d", b"--notice-version", b"1",
                      b"--notice-hash", NOTICE.encode(), b"--workspace", str(ws.path).encode(), text=False)


@pytest.mark.parametrize("node", [b"sim-0001 ", b"sim\xe2\x80\xae0001", b"sim-\xff\xfe"],
                         ids=["trailing-space", "bidi-override", "invalid-utf8"])
def test_the_cli_refuses_a_node_id_outside_the_grammar_and_writes_nothing(workspace: Workspace, node: bytes):
    from tests.governance.attacks import count

    before = count(workspace, "fedgov_entries")
    result = _grant(workspace, node)
    assert result.returncode == 2
    line = result.stderr.decode()
    assert line.startswith("error: --node ") and line.count("\n") == 1 and "Traceback" not in line
    assert count(workspace, "fedgov_entries") == before


def test_lineage_affected_for_a_node_never_seen_is_an_error(workspace: Workspace):
    fails_with(["lineage", "affected", "--node", "nobody", "--workspace", str(workspace.path)],
               "error: --node 'nobody' names nothing this ledger has recorded (it knows: none)", code=2)


def test_audit_log_for_an_entry_type_never_seen_is_an_error(workspace: Workspace):
    fails_with(["audit", "log", "--type", "round.replies", "--workspace", str(workspace.path)],
               "error: --type 'round.replies' names nothing this ledger has recorded (it knows: ...)", code=2)


def test_audit_log_for_a_known_type_without_entries_is_an_empty_answer(workspace: Workspace):
    assert succeeds("audit", "log", "--type", "round.reply", "--format", "json",
                    "--workspace", str(workspace.path)) == "[]\n"


def test_consent_list_for_a_purpose_nobody_consented_to_is_an_error(workspace: Workspace):
    assert _grant(workspace, b"n1").returncode == 0
    fails_with(["consent", "list", "--purpose", "q", "--workspace", str(workspace.path)],
               "error: --purpose 'q': no consent record names this purpose (a typo? `fedgov consent list` shows "
               "them all)", code=2)
