"""Every command that writes leaves the ledger signed, and the signer refuses a history it did not sign.

Items 2 and 3 of "the ledger's guarantees must hold against its own operator".
"""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from governance.errors import UsageError, VerificationError
from governance.identity import NodeKey
from governance.ledger import EntryDraft, Ledger
from governance.node_store import register_nodes
from governance.workspace import Workspace
from tests.governance.attacks import count, fails_with, insert_forged_entry, rewrite_entry, sql, succeeds

NOTICE = hashlib.sha256(b"privacy notice v1").hexdigest()


def _ws(ws: Workspace) -> list[str]:
    return ["--workspace", str(ws.path)]


def _grant(ws: Workspace, node: str = "n1", record: str = "consent-1") -> None:
    succeeds("consent", "grant", "--node", node, "--team", "cardiology", "--purpose", "sepsis-model",
             "--data-category", "vitals", "--notice-version", "1", "--notice-hash", NOTICE, "--record-id", record,
             *_ws(ws))


def _fully_signed(ws: Workspace) -> None:
    out = succeeds("audit", "verify", "--require-signed", *_ws(ws))
    assert "unsigned" not in out


# -- item 2: every write is signed --------------------------------------------------------------

def test_init_is_signed(workspace: Workspace) -> None:
    _fully_signed(workspace)


def test_consent_grant_is_signed(workspace: Workspace) -> None:
    _grant(workspace)
    _fully_signed(workspace)


def test_consent_revoke_is_signed(workspace: Workspace) -> None:
    _grant(workspace)
    succeeds("consent", "revoke", "consent-1", *_ws(workspace))
    _fully_signed(workspace)


def test_shred_is_signed(workspace: Workspace) -> None:
    _grant(workspace)
    succeeds("audit", "shred", "node:n1", "--actor", "dpo", "--reason", "art17-42", *_ws(workspace))
    _fully_signed(workspace)


def test_kek_rotation_is_signed(workspace: Workspace) -> None:
    succeeds("audit", "rotate-kek", "--actor", "ops", *_ws(workspace))
    _fully_signed(workspace)


def test_node_registration_is_signed(workspace: Workspace) -> None:
    key = NodeKey.generate()
    with Ledger.open(workspace) as ledger:
        assert register_nodes(ledger, [("n1", key.public_bytes(), "cardiology")], actor="ops") == 1
    _fully_signed(workspace)


def test_a_deleted_consent_withdrawal_is_caught(workspace: Workspace) -> None:
    """The attack of the issue: the withdrawal was unsigned, so deleting it left verify clean."""
    _grant(workspace)
    succeeds("consent", "revoke", "consent-1", *_ws(workspace))
    withdrawal = count(workspace, "fedgov_entries") - 1
    sql(workspace, f"DELETE FROM fedgov_entries WHERE seq = {withdrawal}",
        f"DELETE FROM fedgov_checkpoints WHERE tree_size > {withdrawal}")
    fails_with(["audit", "verify", *_ws(workspace)],
               f"error: known checkpoint latest_checkpoint (the workspace's last signed) covers {withdrawal + 1} "
               f"entries but the ledger holds only {withdrawal}: the ledger was rolled back or truncated")


# -- item 3: the signer refuses to sign a rewritten history ----------------------------------

@pytest.fixture
def signed(workspace: Workspace) -> Workspace:
    """Genesis, then 8 entries signed at size 5 and 9."""
    with Ledger.open(workspace) as ledger:
        for r in range(2):
            ledger.append([EntryDraft("round.reply", {"i": i}, "node:n1", round=r) for i in range(4)], sign=True)
    return workspace


def test_signer_refuses_after_checkpoints_deleted_and_an_entry_rewritten(signed: Workspace) -> None:
    sql(signed, "DELETE FROM fedgov_checkpoints")
    rewrite_entry(signed, 3, node_id="n999")
    fails_with(["audit", "checkpoint", *_ws(signed)],
               "error: refusing to sign: the stored tree's root at size 9 is ..., not the ... this workspace signed "
               "(entries, or the cache of tree nodes, rewritten: `fedgov audit verify` tells which); investigate with "
               f"`fedgov audit verify --known-checkpoint {signed.head_path}`; once the cause is understood, "
               "`fedgov audit checkpoint --adopt` records the decision")


def test_signer_refuses_after_checkpoints_deleted_with_the_entries_intact(signed: Workspace) -> None:
    sql(signed, "DELETE FROM fedgov_checkpoints")
    fails_with(["audit", "checkpoint", *_ws(signed)],
               "error: refusing to sign: the database holds no checkpoint, but this workspace signed a tree of 9 "
               "entries (checkpoints deleted); investigate with ...")


def test_signer_refuses_a_rolled_back_database(signed: Workspace) -> None:
    sql(signed, "DELETE FROM fedgov_checkpoints WHERE tree_size > 5", "DELETE FROM fedgov_entries WHERE seq >= 5")
    with Ledger.open(signed) as ledger:
        ledger.append([EntryDraft("round.reply", {"replacement": True}, "node:n1")] * 2)
    fails_with(["audit", "checkpoint", *_ws(signed)],
               "error: refusing to sign: the database holds 7 entries, but this workspace signed a tree of 9 (the "
               "database was rolled back or cut); investigate with ...")


def test_signer_refuses_when_later_checkpoints_were_deleted(signed: Workspace) -> None:
    sql(signed, "DELETE FROM fedgov_checkpoints WHERE tree_size > 5")
    fails_with(["audit", "checkpoint", *_ws(signed)],
               "error: refusing to sign: the database's latest checkpoint #2 covers 5 entries, but this workspace signed "
               "a tree of 9 (checkpoints deleted from the database); investigate with ...")


def test_an_older_head_file_is_no_excuse(signed: Workspace) -> None:
    # The head file is an older copy (size 5) and the rows up to it are rewritten: no excuse either.
    db = sqlite3.connect(signed.sqlite_path)
    old_head = db.execute("SELECT note FROM fedgov_checkpoints WHERE tree_size = 5").fetchone()[0]
    db.close()
    signed.head_path.write_text(old_head, encoding="utf-8")
    sql(signed, "DELETE FROM fedgov_checkpoints")
    rewrite_entry(signed, 2, node_id="n999")
    fails_with(["audit", "checkpoint", *_ws(signed)], "error: refusing to sign: the stored tree's root at size 5 is "
               "..., not the ... this workspace signed (entries, or the cache of tree nodes, rewritten: ...")


def test_signer_refuses_a_rewrite_that_keeps_the_database_checkpoints(signed: Workspace) -> None:
    rewrite_entry(signed, 2, node_id="n999")
    fails_with(["audit", "checkpoint", *_ws(signed)],
               "error: refusing to sign: the stored tree's root at size 9 is ..., not the ... this workspace signed "
               "(entries, or the cache of tree nodes, rewritten: `fedgov audit verify` tells which); investigate with ...")


def test_signer_refuses_without_its_head_file(signed: Workspace) -> None:
    signed.head_path.unlink()
    with Ledger.open(signed) as ledger:
        ledger.append([EntryDraft("round.reply", {"late": True}, "node:n1")])
    fails_with(["audit", "checkpoint", *_ws(signed)],
               "error: refusing to sign: this workspace holds no record of the last checkpoint it signed "
               f"({signed.head_path} is missing), so it cannot tell a rewritten database from the real one; if the "
               "workspace predates that file, or the file was lost, run `fedgov audit verify` and then `fedgov audit "
               "checkpoint --adopt`")


def test_a_refused_signature_writes_nothing(signed: Workspace) -> None:
    signed.head_path.unlink()
    before = count(signed, "fedgov_entries"), count(signed, "fedgov_checkpoints")
    fails_with(["consent", "grant", "--node", "n1", "--team", "t", "--purpose", "p", "--data-category", "x",
                "--notice-version", "1", "--notice-hash", NOTICE, *_ws(signed)], "error: refusing to sign: ...")
    assert (count(signed, "fedgov_entries"), count(signed, "fedgov_checkpoints")) == before


def test_adopting_the_database_state_is_recorded_and_signing_resumes(signed: Workspace) -> None:
    signed.head_path.unlink()
    out = succeeds("audit", "checkpoint", "--adopt", "--actor", "ops", "--reason", "workspace restored from backup",
                   *_ws(signed))
    assert out.splitlines()[1] == "10" and signed.head_path.read_text(encoding="utf-8") == out
    with Ledger.open(signed) as ledger:
        adopted = ledger.query(entry_type="ledger.head_adopted")
        assert len(adopted) == 1
        payload = ledger.read_payload(adopted[0])
        assert payload["replaced"] is None and payload["adopted"].splitlines()[1] == "9"
        assert payload["reason"] == "workspace restored from backup"
    _grant(signed)
    _fully_signed(signed)


def test_adopt_needs_an_actor_and_a_reason(signed: Workspace) -> None:
    with Ledger.open(signed) as ledger, pytest.raises(UsageError, match="--actor and --reason"):
        ledger.adopt_head("", "")


def test_adopting_a_restored_database_keeps_the_replaced_head_in_the_record(signed: Workspace) -> None:
    replaced = signed.head_path.read_text(encoding="utf-8")
    sql(signed, "DELETE FROM fedgov_checkpoints WHERE tree_size > 5", "DELETE FROM fedgov_entries WHERE seq >= 5")
    succeeds("audit", "checkpoint", "--adopt", "--actor", "ops", "--reason", "restored from Monday's backup",
             *_ws(signed))
    with Ledger.open(signed) as ledger:
        payload = ledger.read_payload(ledger.query(entry_type="ledger.head_adopted")[0])
    assert payload["replaced"] == replaced and payload["adopted"].splitlines()[1] == "5"
    _fully_signed(signed)


def test_a_ledger_that_does_not_verify_cannot_be_adopted(signed: Workspace) -> None:
    sql(signed, "DELETE FROM fedgov_checkpoints")
    signed.head_path.unlink()
    fails_with(["audit", "checkpoint", "--adopt", "--actor", "ops", "--reason", "r", *_ws(signed)],
               "error: no signed checkpoint: nothing in this ledger is covered by a signature (...)")


def test_signer_refuses_a_row_inserted_under_a_key_the_ledger_never_made(signed: Workspace) -> None:
    seq = insert_forged_entry(signed, "ab" * 16, b"\x00" * 40)
    fails_with(["consent", "grant", "--node", "n9", "--team", "t", "--purpose", "p", "--data-category", "x",
                "--notice-version", "1", "--notice-hash", NOTICE, *_ws(signed)],
               f"error: refusing to sign: entry seq {seq} names data key {'ab' * 16}, which this ledger does not hold "
               "(an entry inserted or altered in the database; investigate with `fedgov audit log` and `fedgov audit "
               "verify`)")


def test_signer_refuses_a_row_inserted_under_a_real_key(signed: Workspace) -> None:
    db = sqlite3.connect(signed.sqlite_path)
    real_key = db.execute("SELECT key_id FROM fedgov_entries WHERE seq = 3").fetchone()[0]
    db.close()
    seq = insert_forged_entry(signed, real_key, b"\x00" * 60, entry_type="run.finished", run_id="r1")
    fails_with(["audit", "checkpoint", *_ws(signed)],
               f"error: refusing to sign: entry seq {seq}: its ciphertext does not authenticate under its data key "
               "(an entry inserted or altered in the database; ...)")
    assert count(signed, "fedgov_checkpoints") == 3


def test_another_writers_genuine_unsigned_entries_are_signed(signed: Workspace) -> None:
    with Ledger.open(signed) as coordinator:
        coordinator.append([EntryDraft("round.reply", {"i": i}, f"node:n{i}", round=3) for i in range(3)])
        _grant(signed)  # another process signs the coordinator's entries along with its own
        coordinator.append([EntryDraft("round.evaluated", {"acc": 0.9}, "run:r1", round=3)])
        coordinator.checkpoint()
    _fully_signed(signed)


def test_signer_refuses_its_own_entries_altered_before_they_were_signed(signed: Workspace) -> None:
    with Ledger.open(signed) as coordinator:
        coordinator.append([EntryDraft("round.reply", {"i": i}, f"node:n{i}", round=3) for i in range(3)])
        rewrite_entry(signed, 11, node_id="n999")
        with pytest.raises(VerificationError, match="refusing to sign: entries 9..11 differ from what this process "
                                                    "wrote"):
            coordinator.checkpoint()


def test_a_rewrite_cannot_be_adopted(signed: Workspace) -> None:
    """Adoption is for a restore that lost entries, never for entries that now hash to another root."""
    sql(signed, "DELETE FROM fedgov_checkpoints WHERE id > 1")
    for seq in (1, 2, 3):
        rewrite_entry(signed, seq, node_id="mallory")
    fails_with(["audit", "checkpoint", "--adopt", "--actor", "ops", "--reason", "r", *_ws(signed)],
               "error: refusing to adopt: the database holds the 9 entries this workspace signed, but they hash to "
               "another root: that is a rewrite, not a restore from backup (run `fedgov audit verify`)")


def test_adoption_never_signs_rows_the_replaced_head_covered(signed: Workspace) -> None:
    """A restore cut below the head, with an unsigned row rewritten: fedgov cannot vouch for it."""
    sql(signed, "DELETE FROM fedgov_checkpoints WHERE tree_size > 5", "DELETE FROM fedgov_entries WHERE seq >= 7")
    rewrite_entry(signed, 6, node_id="mallory")
    fails_with(["audit", "checkpoint", "--adopt", "--actor", "ops", "--reason", "restored", *_ws(signed)],
               "error: refusing to adopt: entries 5..6 are not signed in the database, and the head this workspace "
               "signed (size 9) covered them, but fedgov cannot check them against it; restore a backup that ends at "
               "a checkpoint")


def test_signer_refuses_cached_nodes_that_commit_to_other_rows(workspace: Workspace) -> None:
    """The cache is rewritten to commit to forged rows before they are swapped in: no signature."""
    from governance.verify.merkle import Frontier

    with Ledger.open(workspace) as ledger:
        ledger.append([EntryDraft("round.reply", {"i": i}, "node:n1") for i in range(31)])  # a running round
    db = sqlite3.connect(workspace.sqlite_path)
    leaves = [bytes(h) for (h,) in db.execute("SELECT leaf_hash FROM fedgov_entries ORDER BY seq")]
    db.close()
    forged = leaves[:16] + [bytes([i]) * 32 for i in range(16)]
    nodes = Frontier().extend(forged, min_level=4)
    sql(workspace, "DELETE FROM fedgov_tree_nodes")
    db = sqlite3.connect(workspace.sqlite_path)
    db.executemany("INSERT INTO fedgov_tree_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
    db.commit()
    db.close()
    fails_with(["audit", "checkpoint", *_ws(workspace)],
               "error: refusing to sign: the cached tree nodes do not match the entries after the last checkpoint; run "
               "`fedgov audit verify`, then `fedgov audit repair-cache`")
