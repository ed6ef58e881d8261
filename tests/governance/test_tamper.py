"""One attack per test; each must be caught by `fedgov audit verify` (exit 1, naming what failed).

The attacker has raw database access: the tests drop the append-only triggers first.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from governance.ledger import EntryDraft, Ledger
from governance.ledger.checkpoint import sign_checkpoint
from governance.workspace import Workspace
from tests.cli import run_fedgov
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@pytest.fixture
def signed_ws(workspace: Workspace) -> Workspace:
    """12 entries, three checkpoints: #1 at init (size 1), #2 (size 7), #3 (size 12)."""
    with Ledger.open(workspace) as ledger:
        for batch in range(2):
            ledger.append([EntryDraft("update_received", {"i": i}, "node:n1", run_id="r1", round=batch,
                                      node_id="n1") for i in range(6 if batch == 0 else 5)])
            ledger.checkpoint()
    assert run_fedgov("audit", "verify", "--workspace", str(workspace.path)).returncode == 0
    return workspace


def _attack(ws: Workspace, *statements: str, params: tuple = ()) -> None:
    db = sqlite3.connect(ws.sqlite_path)
    for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        db.execute(f"DROP TRIGGER {row[0]}")
    for sql in statements:
        db.execute(sql, params if "?" in sql else ())
    db.commit()
    db.close()


def _verify_fails(ws: Workspace, *needles: str) -> str:
    result = run_fedgov("audit", "verify", "--workspace", str(ws.path))
    assert result.returncode == 1, result.stdout + result.stderr
    line = result.stderr.strip()
    assert line.startswith("error: ") and "\n" not in line and "Traceback" not in line
    for needle in needles:
        assert needle in line, line
    return line


def test_flipped_byte_in_ciphertext_is_detected(signed_ws: Workspace) -> None:
    db = sqlite3.connect(signed_ws.sqlite_path)
    ciphertext = bytearray(db.execute("SELECT ciphertext FROM fedgov_entries WHERE seq = 4").fetchone()[0])
    db.close()
    ciphertext[20] ^= 0x01
    _attack(signed_ws, "UPDATE fedgov_entries SET ciphertext = ? WHERE seq = 4", params=(bytes(ciphertext),))
    _verify_fails(signed_ws, "entry seq 4", "altered")


def test_edited_plaintext_index_field_is_detected(signed_ws: Workspace) -> None:
    _attack(signed_ws, "UPDATE fedgov_entries SET node_id = 'n999' WHERE seq = 2")
    _verify_fails(signed_ws, "entry seq 2")


def test_edited_field_with_recomputed_leaf_hash_is_caught_by_the_checkpoint(signed_ws: Workspace) -> None:
    db = sqlite3.connect(signed_ws.sqlite_path)
    row = db.execute("SELECT seq, timestamp, entry_type, run_id, round, node_id, model_hash, config_hash, key_id, "
                     "ciphertext FROM fedgov_entries WHERE seq = 2").fetchone()
    db.close()
    from governance.ledger.entry import leaf_bytes
    from governance.ledger.merkle import hash_leaf

    forged = hash_leaf(leaf_bytes(row[0], row[1], row[2], row[3], row[4], "n999", row[6], row[7], row[8], row[9]))
    _attack(signed_ws, "UPDATE fedgov_entries SET node_id = 'n999', leaf_hash = ? WHERE seq = 2", params=(forged,))
    _verify_fails(signed_ws, "checkpoint #2", "does not match")


def test_deleted_row_is_detected(signed_ws: Workspace) -> None:
    _attack(signed_ws, "DELETE FROM fedgov_entries WHERE seq = 5")
    _verify_fails(signed_ws, "entry seq 5 is missing")


def test_two_swapped_rows_are_detected(signed_ws: Workspace) -> None:
    _attack(signed_ws,
            "UPDATE fedgov_entries SET seq = -1 WHERE seq = 3",
            "UPDATE fedgov_entries SET seq = 3 WHERE seq = 4",
            "UPDATE fedgov_entries SET seq = 4 WHERE seq = -1")
    _verify_fails(signed_ws, "entry seq 3")


def test_truncated_tail_is_detected_against_the_last_checkpoint(signed_ws: Workspace) -> None:
    _attack(signed_ws, "DELETE FROM fedgov_entries WHERE seq >= 9")
    _verify_fails(signed_ws, "checkpoint #3", "truncated")


def test_ciphertext_pasted_into_another_row_is_detected(signed_ws: Workspace) -> None:
    _attack(signed_ws, "UPDATE fedgov_entries SET ciphertext = (SELECT ciphertext FROM fedgov_entries WHERE seq = 8) "
                       "WHERE seq = 7")
    _verify_fails(signed_ws, "entry seq 7")


def test_forged_checkpoint_signature_is_detected(signed_ws: Workspace) -> None:
    db = sqlite3.connect(signed_ws.sqlite_path)
    note = db.execute("SELECT note FROM fedgov_checkpoints WHERE id = 2").fetchone()[0]
    db.close()
    head, _, sig = note.rstrip("\n").rpartition(" ")
    forged = head + " " + sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:] + "\n"
    _attack(signed_ws, "UPDATE fedgov_checkpoints SET note = ? WHERE id = 2", params=(forged,))
    _verify_fails(signed_ws, "checkpoint #2", "signature")


def test_checkpoint_rewritten_to_a_fork_is_detected(signed_ws: Workspace, tmp_path: Path) -> None:
    """The operator copies the ledger, grows the copy differently, and pastes its signed checkpoint back."""
    fork = Workspace(tmp_path / "fork")
    shutil.copytree(signed_ws.path, fork.path)
    with Ledger.open(fork) as forked:
        forked.append([EntryDraft("update_received", {"forged": True}, "node:n1")])
        fork_note = forked.checkpoint()
    with Ledger.open(signed_ws) as honest:
        honest.append([EntryDraft("update_received", {"honest": True}, "node:n1")])
    _attack(signed_ws, "INSERT INTO fedgov_checkpoints (id, tree_size, note, consistency_proof, created) "
                       "SELECT 4, tree_size, ?, consistency_proof, created FROM fedgov_checkpoints WHERE id = 3",
            params=(fork_note,))
    db = sqlite3.connect(signed_ws.sqlite_path)
    fork_db = sqlite3.connect(fork.sqlite_path)
    proof = fork_db.execute("SELECT consistency_proof FROM fedgov_checkpoints WHERE id = 4").fetchone()[0]
    db.execute("UPDATE fedgov_checkpoints SET tree_size = 13, consistency_proof = ? WHERE id = 4", (proof,))
    db.commit()
    db.close()
    fork_db.close()
    _verify_fails(signed_ws, "checkpoint #4", "does not match")


def test_replaced_public_key_in_the_db_does_not_fool_the_pinned_key(signed_ws: Workspace) -> None:
    import base64

    from governance.ledger.checkpoint import parse_checkpoint, public_key_bytes

    attacker = Ed25519PrivateKey.generate()
    db = sqlite3.connect(signed_ws.sqlite_path)
    rows = db.execute("SELECT id, note FROM fedgov_checkpoints").fetchall()
    db.close()
    statements = [f"UPDATE fedgov_meta SET value = '{base64.b64encode(public_key_bytes(attacker)).decode()}' "
                  "WHERE key = 'public_key'"]
    for cp_id, note in rows:
        cp = parse_checkpoint(note)
        resigned = sign_checkpoint(cp.origin, cp.size, cp.root, cp.origin, attacker).replace("'", "''")
        statements.append(f"UPDATE fedgov_checkpoints SET note = '{resigned}' WHERE id = {cp_id}")
    _attack(signed_ws, *statements)
    _verify_fails(signed_ws, "checkpoint #1", "trusted key")
