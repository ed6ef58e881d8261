"""One attack per case; each must be caught by `fedgov audit verify`: exit 1 and one exact line.

The attacker has raw database access and drops the append-only triggers first. Attacks that
are plain SQL are data, one folder each in tests/data/tamper; the few that need code (a
recomputed leaf hash, a forked ledger, a key of the attacker's own) are written out below.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.ledger import EntryDraft, Ledger
from governance.workspace import Workspace
from tests.fedgov_command import run_fedgov
from tests.governance.attacks import fails_with, leaf_hash_of, resign_checkpoints, sql
from tests.governance.tamper_vectors import TamperCase, attacked_copy, build_good_ledger, tamper_cases

CASES = tamper_cases()


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = build_good_ledger(tmp_path_factory.mktemp("good") / ".fedgov")
    assert run_fedgov("audit", "verify", "--workspace", str(ws.path)).returncode == 0
    return ws


def _verify(ws: Workspace) -> list[str]:
    return ["audit", "verify", "--workspace", str(ws.path)]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_tamper_vector_fails_verification_with_its_line(good: Workspace, tmp_path: Path, case: TamperCase) -> None:
    fails_with(_verify(attacked_copy(good, case, tmp_path / "ws")), case.want)


def test_the_vectors_are_there() -> None:
    assert len(CASES) >= 18 and all(c.attack.strip() and c.want.startswith("error: ") for c in CASES)


# -- attacks that need code ----------------------------------------------------------------------

@pytest.fixture
def copy(good: Workspace, tmp_path: Path) -> Workspace:
    return attacked_copy(good, TamperCase("none", "", "", False), tmp_path / "ws")


def test_an_edited_field_with_a_recomputed_leaf_hash_is_caught_by_the_checkpoint(copy: Workspace) -> None:
    sql(copy, "UPDATE fedgov_entries SET node_id = 'n999', leaf_hash = ? WHERE seq = 2",
        params=(leaf_hash_of(copy, 2, node_id="n999"),))
    fails_with(_verify(copy), "error: checkpoint #2 (tree size 13): signed root ... does not match the entries' "
               "root ... (entries rewritten, or a forked checkpoint)")


def test_a_checkpoint_rewritten_to_a_fork_is_detected(copy: Workspace, tmp_path: Path) -> None:
    """The operator copies the ledger, grows the copy differently, and pastes its signed checkpoint back."""
    import shutil
    import sqlite3

    fork = Workspace(tmp_path / "fork")
    shutil.copytree(copy.path, fork.path)
    with Ledger.open(fork) as forked:
        forked.append([EntryDraft("update_received", {"forged": True}, "node:n1")])
        fork_note = forked.checkpoint()
    with Ledger.open(copy) as honest:
        honest.append([EntryDraft("update_received", {"honest": True}, "node:n1")])
    fork_db = sqlite3.connect(fork.sqlite_path)
    proof = fork_db.execute("SELECT consistency_proof FROM fedgov_checkpoints WHERE id = 5").fetchone()[0]
    fork_db.close()
    sql(copy, "INSERT INTO fedgov_checkpoints (id, tree_size, note, consistency_proof, created) "
              "SELECT 5, 38, ?, ?, created FROM fedgov_checkpoints WHERE id = 4", params=(fork_note, proof))
    fails_with(_verify(copy), "error: checkpoint #5 (tree size 38): signed root ... does not match the entries' "
               "root ... (entries rewritten, or a forked checkpoint)")


def test_a_key_of_the_attackers_own_in_the_database_does_not_fool_the_pinned_key(copy: Workspace) -> None:
    resign_checkpoints(copy)
    fails_with(_verify(copy), "error: checkpoint #1: bad signature: no signature by a trusted key named ...")
