"""`fedgov audit verify` exits 0 only for what a signature covers, and knows what it saw before.

Each attack starts from a good ledger (three signed "rounds"), is made the way an operator
holding the database would make it, and asserts the exact line verify prints. Those that
are plain SQL on the database alone are tamper vectors (tests/data/tamper).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from governance.ledger import EntryDraft, Ledger, create_workspace
from governance.verify.bundle import jcs_line
from governance.workspace import Workspace
from tests.fedgov_command import run_fedgov
from tests.governance.attacks import fails_with, rewrite_entry, sql, succeeds
from tests.governance.bundle_tamper_vectors import matches, read_members, write_members


def _round(ledger: Ledger, r: int, n: int = 4) -> None:
    ledger.append([EntryDraft("round.reply", {"i": i}, f"node:n{i}", run_id="r1", round=r, node_id=f"n{i}")
                   for i in range(n)])
    ledger.checkpoint()


@pytest.fixture
def three_rounds(workspace: Workspace) -> Workspace:
    """Genesis (size 1), then rounds at sizes 5, 9 and 13, each closed by a checkpoint."""
    with Ledger.open(workspace) as ledger:
        for r in range(3):
            _round(ledger, r)
    return workspace


def _verify(ws: Workspace, *extra: str) -> list[str]:
    return ["audit", "verify", "--workspace", str(ws.path), *extra]


# -- item 1: verified means signed --------------------------------------------------------------

def test_deleted_checkpoints_and_a_rewritten_entry_fail_verification(three_rounds: Workspace) -> None:
    sql(three_rounds, "DELETE FROM fedgov_checkpoints")
    rewrite_entry(three_rounds, 3, node_id="n999")
    fails_with(_verify(three_rounds), "error: no signed checkpoint: nothing in this ledger is covered by a signature "
               "(a fedgov ledger is signed from its creation on, so its checkpoints were removed)")


def test_unsigned_entries_are_reported_on_stdout_with_their_count(three_rounds: Workspace) -> None:
    with Ledger.open(three_rounds) as ledger:
        ledger.append([EntryDraft("round.reply", {"late": True}, "node:n1")] * 2)
    out = succeeds(*_verify(three_rounds))
    assert "unsigned: 2 entries after the last signed checkpoint (tree size 13) are not yet covered by a " \
           "signature" in out.splitlines()


def test_require_signed_fails_on_an_unsigned_tail(three_rounds: Workspace) -> None:
    with Ledger.open(three_rounds) as ledger:
        ledger.append([EntryDraft("round.reply", {"late": True}, "node:n1")] * 2)
    fails_with(_verify(three_rounds, "--require-signed"),
               "error: 2 entries after the last signed checkpoint (tree size 13) are not signed (--require-signed)")


def test_require_signed_passes_on_a_fully_signed_ledger(three_rounds: Workspace) -> None:
    assert succeeds(*_verify(three_rounds, "--require-signed")).startswith("checked 13 entries, 4 checkpoints")


def test_json_output_gives_the_whole_result(three_rounds: Workspace) -> None:
    with Ledger.open(three_rounds) as ledger:
        ledger.append([EntryDraft("round.reply", {"late": True}, "node:n1")])
    result = json.loads(succeeds(*_verify(three_rounds, "--format", "json")))
    assert {k: result[k] for k in ("verified", "entries", "checkpoints", "signed_size", "unsigned_entries", "signed",
                                   "source")} == {"verified": True, "entries": 14, "checkpoints": 4, "signed_size": 13,
                                                  "unsigned_entries": 1, "signed": False, "source": "ledger"}
    assert len(result["root"]) == 64 and result["cache_nodes_checked"] == 0


def test_json_output_of_a_failure_says_not_verified(three_rounds: Workspace) -> None:
    sql(three_rounds, "DELETE FROM fedgov_checkpoints")
    result = run_fedgov(*_verify(three_rounds, "--format", "json"))
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"verified": False, "exit_code": 1, "error": result.stderr[len("error: "):-1]}


def test_bundle_with_an_emptied_checkpoints_file_and_recomputed_manifest_fails(three_rounds: Workspace,
                                                                              tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.zip"
    succeeds("audit", "export", "--workspace", str(three_rounds.path), "--out", str(bundle))
    write_members(bundle, {**read_members(bundle), "checkpoints.jsonl": b""})
    fails_with(["audit", "verify", "--bundle", str(bundle)], "error: no signed checkpoint: nothing in this ledger is "
               "covered by a signature (a fedgov ledger is signed from its creation on, so its checkpoints were removed)")


def test_bundle_without_a_checkpoints_file_fails(three_rounds: Workspace, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.zip"
    succeeds("audit", "export", "--workspace", str(three_rounds.path), "--out", str(bundle))
    members = read_members(bundle)
    del members["checkpoints.jsonl"]
    write_members(bundle, members, fix_manifest=False)
    fails_with(["audit", "verify", "--bundle", str(bundle)],
               "error: checkpoints.jsonl is listed in manifest.json but missing from the bundle")
    write_members(bundle, members)
    fails_with(["audit", "verify", "--bundle", str(bundle)],
               "error: manifest.json does not list checkpoints.jsonl, which every bundle holds")


# -- item 4: rollback needs outside state -------------------------------------------------------

@pytest.fixture
def saved_note(three_rounds: Workspace, tmp_path: Path) -> Path:
    """The latest checkpoint (size 13), saved outside the workspace as an auditor would keep it."""
    note = tmp_path / "seen-by-auditor.note"
    out = succeeds("audit", "checkpoint", "--workspace", str(three_rounds.path), "--out", str(note))
    assert note.read_text(encoding="utf-8") == out and out.splitlines()[1] == "13"
    return note


def _cut_after_round_2(ws: Workspace) -> None:
    """Roll the database back to round 2 (size 9) and remove the workspace's own memory of later checkpoints."""
    sql(ws, "DELETE FROM fedgov_checkpoints WHERE tree_size > 9", "DELETE FROM fedgov_entries WHERE seq >= 9",
        "DELETE FROM fedgov_tree_nodes WHERE (idx + 1) * (1 << level) > 9")
    ws.head_path.unlink()


def test_a_rolled_back_ledger_verifies_without_outside_state(three_rounds: Workspace, saved_note: Path) -> None:
    _cut_after_round_2(three_rounds)
    assert succeeds(*_verify(three_rounds)).startswith("checked 9 entries, 3 checkpoints")


def test_a_known_checkpoint_catches_a_rolled_back_ledger(three_rounds: Workspace, saved_note: Path) -> None:
    _cut_after_round_2(three_rounds)
    fails_with(_verify(three_rounds, "--known-checkpoint", str(saved_note)),
               f"error: known checkpoint {saved_note} covers 13 entries but the ledger holds only 9: the ledger was "
               "rolled back or truncated")


def test_a_known_checkpoint_catches_a_history_rewritten_and_resigned_by_the_operator(
        three_rounds: Workspace, saved_note: Path, tmp_path: Path) -> None:
    # The operator holds the key: from a copy taken at round 2, a different round 3 is signed.
    fork = Workspace(tmp_path / "fork")
    shutil.copytree(three_rounds.path, fork.path)
    _cut_after_round_2(fork)
    with Ledger.open(fork) as forked:
        forked.adopt_head("operator", "restore")
        forked.append([EntryDraft("round.reply", {"forged": i}, "node:n1") for i in range(3)], sign=True)
    assert succeeds(*_verify(fork)).startswith("checked 13 entries, 5 checkpoints")
    fails_with(_verify(fork, "--known-checkpoint", str(saved_note)),
               f"error: known checkpoint {saved_note} (tree size 13): signed root ... does not match the entries' "
               "root ... (history rewritten)")


def test_a_known_checkpoint_that_the_ledger_holds_is_reported(three_rounds: Workspace, saved_note: Path) -> None:
    with Ledger.open(three_rounds) as ledger:
        _round(ledger, 3)
    out = succeeds(*_verify(three_rounds, "--known-checkpoint", str(saved_note)))
    assert "known checkpoints: 2 matched (tree sizes 13, 17)" in out.splitlines()


def test_a_known_checkpoint_that_no_trusted_key_signed_is_a_usage_error(three_rounds: Workspace, tmp_path: Path) -> None:
    other = create_workspace(tmp_path / "other", "another passphrase")
    fails_with(_verify(three_rounds, "--known-checkpoint", str(other.head_path)),
               f"error: --known-checkpoint {other.head_path} is not a checkpoint signed by a trusted key: ...", code=2)


def test_a_known_checkpoint_that_is_not_a_file_is_a_usage_error(three_rounds: Workspace, tmp_path: Path) -> None:
    fails_with(_verify(three_rounds, "--known-checkpoint", str(tmp_path / "nope")),
               f"error: cannot read --known-checkpoint {tmp_path / 'nope'}: No such file or directory", code=2)


def test_a_known_checkpoint_pins_the_key_of_a_bundle_that_ships_its_own(three_rounds: Workspace, saved_note: Path,
                                                                       tmp_path: Path) -> None:
    """An extra key under the ledger's name in the shipped trusted_keys must not sign a forged continuation."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from governance.ledger.checkpoint import public_key_bytes, sign_checkpoint
    from governance.verify.checkpoint import VerifierKey, parse_checkpoint

    bundle = tmp_path / "bundle.zip"
    succeeds("audit", "export", "--workspace", str(three_rounds.path), "--out", str(bundle))
    members = read_members(bundle)
    genuine = parse_checkpoint(saved_note.read_text(encoding="utf-8"))
    mallory = Ed25519PrivateKey.generate()
    extra = VerifierKey(genuine.origin, public_key_bytes(mallory)).to_text()
    members["trusted_keys"] += (extra + "\n").encode()
    lines = members["checkpoints.jsonl"].split(b"\n")[:-1]
    last = json.loads(lines[-1])
    forged = sign_checkpoint(genuine.origin, genuine.size, genuine.root, genuine.origin, mallory)
    lines.append(jcs_line({**last, "id": last["id"] + 1, "note": forged, "consistency_proof": "[]"}).rstrip(b"\n"))
    members["checkpoints.jsonl"] = b"".join(line + b"\n" for line in lines)
    write_members(bundle, members)
    done = run_fedgov("audit", "verify", "--bundle", str(bundle), "--known-checkpoint", str(saved_note))
    assert done.returncode == 1 and matches((
        "error: checkpoint #5: bad signature: no signature by a trusted key named ...",
        "error: inclusion proofs not checked: the newest checkpoint #5 did not verify"), done.stderr), done.stderr
