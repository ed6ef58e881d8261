"""Ledger behaviour: append, query, checkpoints, proofs, crypto-shredding, KEK rotation, blobs."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from governance.errors import UsageError, VerificationError
from governance.keystore import KeyMaterial
from governance.ledger import EntryDraft, KeyDestroyedError, Ledger, create_workspace
from governance.ledger.checkpoint import verify_checkpoint
from governance.ledger.envelope import DecryptionError
from governance.ledger.verify import verify_ledger
from governance.verify.checkpoint import parse_checkpoint
from governance.verify.merkle import hash_leaf, verify_consistency, verify_inclusion
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE


def _drafts(n: int, scope: str = "run:r1", run_id: str = "r1", node: str = "n1") -> list[EntryDraft]:
    return [EntryDraft("update_received", {"i": i, "loss": 0.25}, scope, run_id=run_id, round=i % 3,
                       node_id=node, model_hash=f"m{i}") for i in range(n)]


def test_append_returns_gapless_seqs_after_the_genesis_entry(ledger: Ledger) -> None:
    assert ledger.append(_drafts(3)) == [1, 2, 3]
    assert ledger.append(_drafts(2)) == [4, 5]


def test_query_filters_by_run_round_and_node(ledger: Ledger) -> None:
    ledger.append(_drafts(6) + _drafts(3, run_id="r2", node="n2"))
    found = ledger.query(run_id="r1", round=1, node_id="n1")
    assert [e.model_hash for e in found] == ["m1", "m4"]
    assert all(e.entry_type == "update_received" for e in found)


def test_payload_round_trips_and_is_not_stored_in_clear(ledger: Ledger) -> None:
    ledger.append([EntryDraft("consent", {"secret": "very-private-token"}, "node:n1")])
    entry = ledger.query(entry_type="consent")[0]
    assert ledger.read_payload(entry) == {"secret": "very-private-token"}
    assert b"very-private-token" not in ledger.workspace.sqlite_path.read_bytes()


def test_checkpoint_is_a_signed_c2sp_note_over_the_current_root(ledger: Ledger) -> None:
    ledger.append(_drafts(5))
    text = ledger.checkpoint()
    cp = verify_checkpoint(text, ledger.verifier_key, ledger.origin)
    assert (cp.size, cp.root) == (6, ledger.root())
    assert text.split("\n")[4].startswith("\u2014 " + ledger.origin + " ")


def test_checkpoint_without_new_entries_returns_the_previous_one(ledger: Ledger) -> None:
    ledger.append(_drafts(2))
    assert ledger.checkpoint() == ledger.checkpoint()


def test_inclusion_and_consistency_proofs_verify_against_checkpoints(ledger: Ledger) -> None:
    ledger.append(_drafts(10))
    old = parse_checkpoint(ledger.checkpoint())
    ledger.append(_drafts(23))
    new = parse_checkpoint(ledger.checkpoint())
    entry = ledger.get(7)
    verify_inclusion(7, new.size, entry.leaf_hash, ledger.inclusion_proof(7, new.size), new.root)
    verify_inclusion(7, new.size, hash_leaf(entry.leaf_bytes()), ledger.inclusion_proof(7), new.root)
    verify_consistency(old.size, new.size, ledger.consistency_proof(old.size, new.size), old.root, new.root)


def test_shredding_makes_payloads_unreadable_but_the_ledger_still_verifies(ledger: Ledger) -> None:
    ledger.append(_drafts(3, scope="node:n1") + _drafts(2, scope="node:n2", node="n2"))
    ledger.checkpoint()
    seq = ledger.shred("node:n1", actor="dpo@example.org", reason="GDPR Art. 17 request 42")
    ledger.checkpoint()
    with pytest.raises(KeyDestroyedError, match="key destroyed"):
        ledger.read_payload(ledger.get(1))
    assert ledger.read_payload(ledger.get(4))["i"] == 0
    record = ledger.read_payload(ledger.get(seq))
    assert (record["actor"], record["reason"], record["scope"]) == ("dpo@example.org", "GDPR Art. 17 request 42", "node:n1")
    assert "destroyed_at" in record
    assert verify_ledger(ledger.workspace).entries == seq + 1


def test_shredded_key_stays_destroyed_for_a_fresh_process(ledger: Ledger, workspace: Workspace) -> None:
    ledger.append(_drafts(1, scope="node:gone"))
    ledger.shred("node:gone", actor="a", reason="r")
    with Ledger.open(workspace) as fresh, pytest.raises(KeyDestroyedError, match="key destroyed"):
        fresh.read_payload(fresh.get(1))


def test_a_shredded_scope_gets_a_new_key_for_new_entries(ledger: Ledger) -> None:
    ledger.append(_drafts(1, scope="node:x"))
    ledger.shred("node:x", actor="a", reason="r")
    (seq,) = ledger.append(_drafts(1, scope="node:x"))
    assert ledger.read_payload(ledger.get(seq))["i"] == 0


def test_shredding_an_unknown_scope_is_a_usage_error(ledger: Ledger) -> None:
    with pytest.raises(UsageError, match="no live data key"):
        ledger.shred("node:never", actor="a", reason="r")


def test_kek_rotation_rewraps_keys_leaves_entries_untouched_and_is_recorded(ledger: Ledger, workspace: Workspace) -> None:
    ledger.append(_drafts(4))
    before = [(e.seq, e.ciphertext, e.leaf_hash) for e in ledger.query()]
    keystore_before = workspace.keystore_path.read_bytes()
    seq = ledger.rotate_kek(actor="ops")
    assert [(e.seq, e.ciphertext, e.leaf_hash) for e in ledger.query()][: len(before)] == before
    assert workspace.keystore_path.read_bytes() != keystore_before
    assert ledger.get(seq).entry_type == "kek.rotated"
    with Ledger.open(workspace) as fresh:
        assert [fresh.read_payload(e)["i"] for e in fresh.query(entry_type="update_received")] == [0, 1, 2, 3]
        assert fresh.read_payload(fresh.get(seq))["actor"] == "ops"


def test_blob_encryption_is_bound_to_its_aad(ledger: Ledger) -> None:
    blob = ledger.encrypt_blob("run:r1", b"model weights", b"round=3")
    assert ledger.decrypt_blob("run:r1", blob, b"round=3") == b"model weights"
    with pytest.raises(DecryptionError):
        ledger.decrypt_blob("run:r1", blob, b"round=4")


def test_blob_of_a_shredded_scope_cannot_be_decrypted(ledger: Ledger) -> None:
    blob = ledger.encrypt_blob("run:old", b"weights", b"")
    ledger.shred("run:old", actor="a", reason="retention expired")
    with pytest.raises(KeyDestroyedError, match="key destroyed"):
        ledger.decrypt_blob("run:old", blob, b"")


def test_readonly_ledger_refuses_to_write(workspace: Workspace) -> None:
    with Ledger.open_readonly(workspace) as readonly, pytest.raises(UsageError, match="read-only"):
        readonly.append(_drafts(1))


def test_keys_from_env_open_the_ledger_without_a_passphrase(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from governance.keystore import read_keystore

    keys = read_keystore(workspace.keystore_path, PASSPHRASE)
    monkeypatch.delenv("FEDGOV_PASSPHRASE")
    monkeypatch.setenv("FEDGOV_KEK", base64.b64encode(keys.kek).decode())
    monkeypatch.setenv("FEDGOV_SIGNING_KEY", base64.b64encode(keys.signing_seed).decode())
    with Ledger.open(workspace) as opened:
        assert opened.append(_drafts(1)) == [1]
        assert opened.read_payload(opened.get(0))["origin"] == opened.origin


def test_key_material_repr_shows_no_key_bytes() -> None:
    keys = KeyMaterial.generate()
    assert keys.kek.hex() not in repr(keys) and "kek=" not in repr(keys)


@pytest.mark.parametrize("n, table, statement", [
    # a stored interior node (schema 2 keeps levels >= 4; 16 leaves complete node (4, 0)) ...
    (15, "fedgov_tree_nodes", "UPDATE fedgov_tree_nodes SET hash = randomblob(32) WHERE level = 4 AND idx = 0"),
    # ... and a leaf hash under the unstored node (3, 0) of a 14-leaf tree, rehashed from leaves when read
    (13, "fedgov_entries", "UPDATE fedgov_entries SET leaf_hash = randomblob(32) WHERE seq = 5"),
])
def test_checkpoint_refuses_to_sign_when_history_was_rewritten(ledger: Ledger, n: int, table: str,
                                                                statement: str) -> None:
    ledger.append(_drafts(n))
    ledger.checkpoint()
    with ledger.store.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TRIGGER {table}_no_update")
        assert conn.exec_driver_sql(statement).rowcount == 1
    with Ledger.open(ledger.workspace) as other:
        other.append(_drafts(1))
        with pytest.raises(VerificationError, match="refusing to sign"):
            other.checkpoint()


def test_prefetched_keys_read_every_scope_and_shredded_ones_still_refuse(workspace):
    with Ledger.open(workspace) as writer:
        writer.append([EntryDraft("note", {"n": i}, scope=f"node:{i}") for i in range(20)])
        writer.shred("node:3", actor="dpo", reason="erasure")
    with Ledger.open(workspace) as reader:
        entries = reader.query(entry_type="note")
        reader.prefetch_keys(entries)
        readable = [e for e in entries if e.seq != entries[3].seq]
        assert [reader.read_payload(e)["n"] for e in readable] == [i for i in range(20) if i != 3]
        with pytest.raises(KeyDestroyedError, match="key destroyed"):
            reader.read_payload(entries[3])


def test_schema_1_ledger_keeps_every_tree_level_and_stays_readable_by_older_fedgov(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from governance.ledger import store as store_module
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 1)
    ws = create_workspace(tmp_path / ".fedgov", PASSPHRASE)  # as an older fedgov created it
    monkeypatch.undo()
    with Ledger.open(ws, PASSPHRASE) as old:
        assert old.store.meta["schema_version"] == "1" and old.store.min_stored_level == 1
        old.append(_drafts(40))
        note = parse_checkpoint(old.checkpoint())
        with old.store.engine.connect() as conn:
            levels = {row[0] for row in conn.exec_driver_sql("SELECT DISTINCT level FROM fedgov_tree_nodes")}
        assert levels == {1, 2, 3, 4, 5}  # every level, as schema 1 readers expect
        for seq in (0, 7, 33, 40):
            verify_inclusion(seq, note.size, old.get(seq).leaf_hash, old.inclusion_proof(seq), note.root)
    assert verify_ledger(ws).entries == 41


def test_schema_2_ledger_stores_levels_from_4_and_proves_every_entry(ledger: Ledger) -> None:
    assert ledger.store.meta["schema_version"] == "2"
    ledger.append(_drafts(40))
    note = parse_checkpoint(ledger.checkpoint())
    with ledger.store.engine.connect() as conn:
        levels = {row[0] for row in conn.exec_driver_sql("SELECT DISTINCT level FROM fedgov_tree_nodes")}
    assert levels == {4, 5}
    for seq in range(note.size):
        verify_inclusion(seq, note.size, ledger.get(seq).leaf_hash, ledger.inclusion_proof(seq), note.root)
    for size1 in (1, 3, 8, 17, 30):
        verify_consistency(size1, note.size, ledger.consistency_proof(size1, note.size),
                                  ledger.root(size1), note.root)
