"""`fedgov audit show SEQ`: one entry, its leaf hash, and an inclusion proof checked before it is printed."""

from __future__ import annotations

import base64
import json

import pytest

from governance.ledger import EntryDraft, Ledger, create_workspace
from governance.verify.checkpoint import VerifierKey, verify_trusted
from governance.verify.merkle import verify_inclusion
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE
from tests.governance.attacks import fails_with, resign_checkpoints, rewrite_entry, succeeds
from tests.governance.query_story import write_story


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = create_workspace(tmp_path_factory.mktemp("story") / ".fedgov", PASSPHRASE)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        write_story(ledger)
    return ws


@pytest.fixture
def own_story(workspace: Workspace) -> Workspace:
    """A story of the test's own, for a test that changes the ledger."""
    with Ledger.open(workspace) as ledger:
        write_story(ledger)
    return workspace


@pytest.fixture(scope="module")
def text(story: Workspace) -> str:
    return succeeds("audit", "show", "9", "--workspace", str(story.path))


def trusted(ws: Workspace) -> list[VerifierKey]:
    return [VerifierKey.from_text(line) for line in ws.trust_path.read_text().splitlines() if line.strip()]


def test_the_text_ends_with_a_tlog_proof_that_a_verifier_accepts_on_its_own(story, text):
    out = text
    proof_text = out[out.index("c2sp.org/tlog-proof@v1\n"):]
    head, _, note = proof_text.partition("\n\n")
    lines = head.splitlines()
    assert lines[:2] == ["c2sp.org/tlog-proof@v1", "index 9"]
    cp = verify_trusted(note, trusted(story))
    leaf = bytes.fromhex(next(line.split()[-1] for line in out.splitlines() if line.strip().startswith("leaf hash")))
    verify_inclusion(9, cp.size, leaf, [base64.b64decode(h) for h in lines[2:]], cp.root)


def test_the_text_names_the_entry_by_its_index_fields(text):
    out = text
    assert out.splitlines()[:6] == ["entry 9", "  type      round.reply", out.splitlines()[2],
                                    "  run       r1", "  round     1", "  node      n1"]


def test_json_carries_the_proof_and_the_checkpoint_it_leads_to(story):
    shown = json.loads(succeeds("audit", "show", "9", "--format", "json", "--workspace", str(story.path)))
    assert shown["signed"] is True and shown["entry"]["seq"] == 9 and shown["checkpoint"]["tree_size"] == 22
    assert shown["tlog_proof"].endswith(shown["checkpoint"]["note"])
    assert "payload" not in shown["entry"]


def test_decrypt_adds_the_payload(story):
    shown = json.loads(succeeds("audit", "show", "9", "--format", "json", "--decrypt",
                                "--workspace", str(story.path)))
    assert shown["entry"]["payload"]["consent_record_id"] == "c-1"


def test_an_unknown_seq_is_an_error_naming_the_range(story):
    fails_with(["audit", "show", "99", "--workspace", str(story.path)],
               "error: no entry with seq 99: the ledger holds seq 0 to 21", code=2)


def test_an_entry_after_the_last_signed_checkpoint_says_it_is_not_yet_signed(own_story):
    with Ledger.open(own_story) as ledger:
        [seq] = ledger.append([EntryDraft("run.finished", {"status": "x"}, scope="run:r3", run_id="r3")])
    out = succeeds("audit", "show", str(seq), "--workspace", str(own_story.path))
    assert out.splitlines()[-1] == (f"not signed: entry seq {seq} is after the last signed checkpoint (tree size "
                                    f"{seq}): not yet signed; `fedgov audit checkpoint` signs it")


def test_a_rewritten_entry_has_no_proof_to_the_signed_root(own_story):
    rewrite_entry(own_story, 9, node_id="n3")
    fails_with(["audit", "show", "9", "--workspace", str(own_story.path)],
               "error: entry seq 9: the inclusion proof does not lead to the signed root of tree size 22: ...; "
               "run `fedgov audit verify`", code=1)


def test_a_checkpoint_signed_by_another_key_is_refused(own_story):
    resign_checkpoints(own_story)
    fails_with(["audit", "show", "9", "--workspace", str(own_story.path)],
               "error: the latest checkpoint (#...) does not verify with the pinned key: ...", code=1)
