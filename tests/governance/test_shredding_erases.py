"""After `fedgov audit shred SCOPE` returns, no copy of any file opens the scope's payloads (item 7).

Each test notes the key material before shredding, shreds with the real command, then
copies every file the workspace (and, for PostgreSQL, the server) keeps, and shows that
nothing in those copies, opened with the passphrase, decrypts a payload of that scope.
The old wrapped key does survive in the copies: that is the point. Its KEK does not.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

from governance.keystore import read_keystore
from governance.ledger import EntryDraft, Ledger, create_workspace
from governance.ledger.envelope import entry_aad
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE
from tests.governance.attacks import succeeds

SCOPE = "node:n7"


@dataclass(frozen=True)
class Noted:
    """What an attacker would want, noted before the shred: the data key, its wrapping, a payload."""

    data_key: bytes
    wrapped: bytes
    kek: bytes
    ciphertext: bytes
    aad: bytes


def _fill_and_note(ws: Workspace) -> Noted:
    with Ledger.open(ws) as ledger:
        ledger.append([EntryDraft("consent.granted", {"secret": f"record {i}"}, SCOPE, node_id="n7")
                       for i in range(3)]
                      + [EntryDraft("round.reply", {"other": i}, f"node:n{i}") for i in range(5)], sign=True)
        entry = ledger.query(node_id="n7")[0]
        with ledger.store.read() as conn:
            row = ledger.store.data_key(conn, entry.key_id)
        aad = entry_aad(ledger.ledger_id, entry.seq, entry.entry_type, entry.key_id)
    kek = read_keystore(ws.keystore_path, PASSPHRASE).kek
    data_key = aes_key_unwrap(kek, bytes(row.wrapped_key))
    noted = Noted(data_key, bytes(row.wrapped_key), kek, entry.ciphertext, aad)
    assert _decrypts(noted, data_key)  # the noted material is what opens the payload
    return noted


def _decrypts(noted: Noted, data_key: bytes) -> bool:
    plain = AESGCM(data_key).decrypt(noted.ciphertext[:12], noted.ciphertext[12:], noted.aad)
    return b"record 0" in plain


def _assert_nothing_opens_the_scope(noted: Noted, files: list[Path], keystore: Path) -> None:
    """The data key is in no file; every surviving wrapped copy resists every KEK the passphrase opens."""
    copies = read_keystore(keystore, PASSPHRASE)
    keks = (copies.kek, *copies.old_keks)
    assert noted.kek not in keks
    survivors = 0
    for path in files:
        data = path.read_bytes()
        assert noted.data_key not in data, f"{path} holds the data key in clear"
        assert noted.kek not in data, f"{path} holds the old KEK in clear"
        at = data.find(noted.wrapped)
        while at != -1:
            survivors += 1
            for kek in keks:
                with pytest.raises(InvalidUnwrap):
                    aes_key_unwrap(kek, data[at:at + len(noted.wrapped)])
            at = data.find(noted.wrapped, at + 1)
    assert survivors, "the old wrapped key should survive somewhere (WAL, dead tuple): else this test shows nothing"


def test_shred_on_sqlite_with_another_connection_open_leaves_no_copy_that_decrypts(workspace: Workspace,
                                                                                   tmp_path: Path) -> None:
    noted = _fill_and_note(workspace)
    holder = sqlite3.connect(workspace.sqlite_path)  # a running coordinator's connection, mid-read
    holder.execute("BEGIN")
    holder.execute("SELECT COUNT(*) FROM fedgov_data_keys").fetchall()
    try:
        succeeds("audit", "shred", SCOPE, "--actor", "dpo", "--reason", "art17-7", "--workspace", str(workspace.path))
        copy = tmp_path / "copy-after-shred"
        shutil.copytree(workspace.path, copy)
    finally:
        holder.close()
    files = [p for p in copy.rglob("*") if p.is_file()]
    assert {"ledger.db", "ledger.db-wal", "keystore.json"} <= {p.name for p in files}
    _assert_nothing_opens_the_scope(noted, files, copy / "keystore.json")


def test_shred_on_postgres_leaves_no_heap_or_wal_copy_that_decrypts(tmp_path: Path, pg_url: str) -> None:
    import psycopg

    ws = create_workspace(tmp_path / ".fedgov", PASSPHRASE, db_url=pg_url)
    noted = _fill_and_note(ws)
    succeeds("audit", "shred", SCOPE, "--actor", "dpo", "--reason", "art17-7", "--workspace", str(ws.path))
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        try:
            conn.execute("CHECKPOINT")  # dirty pages to the heap files, as any later moment would
            data_dir = Path(conn.execute("SHOW data_directory").fetchone()[0])
            heap = data_dir / conn.execute("SELECT pg_relation_filepath('fedgov_data_keys')").fetchone()[0]
        except psycopg.Error as err:
            pytest.skip(f"the server's files are not reachable from this test ({err})")
    try:
        files = [heap, *sorted((data_dir / "pg_wal").glob("0*"))]
        for path in files:
            path.stat()
    except PermissionError as err:
        pytest.skip(f"the server's files are not readable by this user ({err})")
    copy = tmp_path / "workspace-copy"
    shutil.copytree(ws.path, copy)
    _assert_nothing_opens_the_scope(noted, files + [p for p in copy.rglob("*") if p.is_file()],
                                    copy / "keystore.json")


def test_a_copy_taken_before_the_shred_still_decrypts(workspace: Workspace, tmp_path: Path) -> None:
    """The control: before shredding, the same search finds a key that opens the payload."""
    noted = _fill_and_note(workspace)
    copy = tmp_path / "copy-before"
    shutil.copytree(workspace.path, copy)
    kek = read_keystore(copy / "keystore.json", PASSPHRASE).kek
    data = b"".join(p.read_bytes() for p in copy.glob("ledger.db*"))
    at = data.find(noted.wrapped)
    assert at != -1 and _decrypts(noted, aes_key_unwrap(kek, data[at:at + len(noted.wrapped)]))


def test_shredding_replaces_the_key_encryption_key_and_keeps_other_scopes_readable(workspace: Workspace) -> None:
    _fill_and_note(workspace)
    before = read_keystore(workspace.keystore_path, PASSPHRASE)
    succeeds("audit", "shred", SCOPE, "--actor", "dpo", "--reason", "art17-7", "--workspace", str(workspace.path))
    after = read_keystore(workspace.keystore_path, PASSPHRASE)
    assert after.kek != before.kek and after.old_keks == ()
    with Ledger.open(workspace) as ledger:
        assert [ledger.read_payload(e)["other"] for e in ledger.query(entry_type="round.reply")] == [0, 1, 2, 3, 4]
        payload = ledger.read_payload(ledger.query(entry_type="key.destroyed")[0])
    assert payload["scope"] == SCOPE and payload["rewrapped_keys"] >= 5 and payload["old_kek_id"] != payload["new_kek_id"]


def test_a_running_writer_keeps_appending_after_another_process_shreds(workspace: Workspace) -> None:
    _fill_and_note(workspace)
    with Ledger.open(workspace) as coordinator:
        coordinator.append([EntryDraft("round.reply", {"before": True}, "node:n1")])
        succeeds("audit", "shred", SCOPE, "--actor", "dpo", "--reason", "art17-7", "--workspace",
                 str(workspace.path))
        coordinator.append([EntryDraft("round.reply", {"after": True}, "node:n1"),
                            EntryDraft("round.reply", {"new scope": True}, "node:n99")], sign=True)
    with Ledger.open(workspace) as fresh:
        last = fresh.query(entry_type="round.reply")[-2:]
        assert [fresh.read_payload(e) for e in last] == [{"after": True}, {"new scope": True}]


def _shred_dying_before_the_last_keystore_write(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> list:
    """Shred, and die (as kill -9 would) when the keystore is written the second time: after the commit."""
    from governance.ledger import ledger as ledger_module

    real_write, calls = ledger_module.write_keystore, []

    def dies_on_the_final_write(path, keys, passphrase):  # the second write drops the old KEK
        calls.append(keys)
        if len(calls) == 2:
            raise KeyboardInterrupt("power cut")
        real_write(path, keys, passphrase)

    monkeypatch.setattr(ledger_module, "write_keystore", dies_on_the_final_write)
    with Ledger.open(ws) as ledger, pytest.raises(KeyboardInterrupt):
        ledger.shred(SCOPE, actor="dpo", reason="art17-7")
    monkeypatch.setattr(ledger_module, "write_keystore", real_write)
    return calls


def test_a_crash_after_commit_is_finished_by_the_next_writer(workspace: Workspace,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    noted = _fill_and_note(workspace)
    calls = _shred_dying_before_the_last_keystore_write(workspace, monkeypatch)
    assert noted.kek in read_keystore(workspace.keystore_path, PASSPHRASE).old_keks  # the crash left it behind
    Ledger.open(workspace).close()  # the next writer to open the ledger
    healed = read_keystore(workspace.keystore_path, PASSPHRASE)
    assert healed.old_keks == () and healed.kek == calls[1].kek != noted.kek


def test_a_crash_before_commit_goes_back_to_the_old_kek(workspace: Workspace) -> None:
    from governance.keystore import KeyMaterial, write_keystore
    from governance.ledger.envelope import new_key

    noted = _fill_and_note(workspace)
    keys = read_keystore(workspace.keystore_path, PASSPHRASE)
    staged = KeyMaterial(kek=new_key(), signing_seed=keys.signing_seed, old_keks=(keys.kek,))
    write_keystore(workspace.keystore_path, staged, PASSPHRASE)  # died before the database committed
    with Ledger.open(workspace) as ledger:
        assert ledger.read_payload(ledger.query(node_id="n7")[0]) == {"secret": "record 0"}
    assert read_keystore(workspace.keystore_path, PASSPHRASE) == KeyMaterial(noted.kek, keys.signing_seed)


def test_shredding_with_keys_from_the_environment_is_refused(workspace: Workspace,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    from governance.errors import UsageError

    _fill_and_note(workspace)
    keys = read_keystore(workspace.keystore_path, PASSPHRASE)
    monkeypatch.setenv("FEDGOV_KEK", base64.b64encode(keys.kek).decode())
    monkeypatch.setenv("FEDGOV_SIGNING_KEY", base64.b64encode(keys.signing_seed).decode())
    with Ledger.open(workspace) as ledger, pytest.raises(UsageError, match="open the ledger with its passphrase"):
        ledger.shred(SCOPE, actor="dpo", reason="art17-7")


def _kek_state(ws: Workspace) -> tuple[str, str, tuple[bytes, ...]]:
    from governance.ledger.envelope import kek_id

    keys = read_keystore(ws.keystore_path, PASSPHRASE)
    db = sqlite3.connect(ws.sqlite_path)
    wanted = db.execute("SELECT value FROM fedgov_meta WHERE key = 'kek_id'").fetchone()[0]
    db.close()
    return kek_id(keys.kek), wanted, keys.old_keks


@pytest.mark.parametrize("attempt", range(3))
def test_a_shred_racing_a_rotation_keeps_the_current_kek_and_drops_the_old(workspace: Workspace, tmp_path: Path,
                                                                           attempt: int) -> None:
    import subprocess

    from tests.fedgov_command import fedgov_argv, fedgov_env

    noted = _fill_and_note(workspace)
    before = tmp_path / "before.db"
    shutil.copy(workspace.sqlite_path, before)
    procs = [subprocess.Popen(fedgov_argv(*args, "--workspace", str(workspace.path)), env=fedgov_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for args in (["audit", "shred", SCOPE, "--actor", "dpo", "--reason", "art17"],
                          ["audit", "rotate-kek", "--actor", "ops"])]
    assert [p.wait(60) for p in procs] == [0, 0], [p.stderr.read() for p in procs]
    current, wanted, old = _kek_state(workspace)
    assert current == wanted and old == ()
    _assert_nothing_opens_the_scope(noted, [before, *workspace.path.glob("ledger.db*")], workspace.keystore_path)
    with Ledger.open(workspace) as ledger:
        assert [ledger.read_payload(e)["other"] for e in ledger.query(entry_type="round.reply")] == [0, 1, 2, 3, 4]


def test_a_failure_after_the_commit_settles_the_keystore_on_the_new_kek(workspace: Workspace,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from contextlib import contextmanager

    noted = _fill_and_note(workspace)
    with Ledger.open(workspace) as ledger:
        real_write = ledger.store.write

        @contextmanager
        def connection_lost_after_commit():
            with real_write() as conn:
                yield conn
            raise ConnectionError("server went away after COMMIT")

        monkeypatch.setattr(ledger.store, "write", connection_lost_after_commit)
        with pytest.raises(ConnectionError):
            ledger.shred(SCOPE, actor="dpo", reason="art17-7")
    current, wanted, old = _kek_state(workspace)
    assert current == wanted and old == () and noted.kek not in old
    with Ledger.open(workspace) as ledger:
        assert ledger.query(entry_type="key.destroyed")
        assert [ledger.read_payload(e)["other"] for e in ledger.query(entry_type="round.reply")] == [0, 1, 2, 3, 4]


def test_a_failure_before_the_commit_leaves_the_old_kek_in_use(workspace: Workspace,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from governance.ledger import store as store_module

    noted = _fill_and_note(workspace)

    def refuses(*_args, **_kwargs):
        raise ConnectionError("server went away before COMMIT")

    with Ledger.open(workspace) as ledger:
        monkeypatch.setattr(store_module.LedgerStore, "destroy_data_keys", refuses)
        with pytest.raises(ConnectionError):
            ledger.shred(SCOPE, actor="dpo", reason="art17-7")
    current, wanted, old = _kek_state(workspace)
    assert read_keystore(workspace.keystore_path, PASSPHRASE).kek == noted.kek and current == wanted and old == ()


def test_a_temp_keystore_left_by_a_crash_is_removed_by_the_next_writer(workspace: Workspace) -> None:
    leftover = workspace.path / "keystore.json.4242.tmp"
    shutil.copy(workspace.keystore_path, leftover)
    Ledger.open(workspace).close()
    assert not leftover.exists()


def test_a_planted_copy_of_the_shredded_key_is_destroyed_too(workspace: Workspace, tmp_path: Path) -> None:
    from tests.governance.attacks import sql

    noted = _fill_and_note(workspace)
    before = tmp_path / "before.db"
    shutil.copy(workspace.sqlite_path, before)
    sql(workspace, "INSERT INTO fedgov_data_keys (key_id, scope, wrapped_key, kek_id, created) SELECT "
                   f"'{'ff' * 16}', 'registry-backup', wrapped_key, kek_id, created FROM fedgov_data_keys "
                   f"WHERE scope = '{SCOPE}'")
    succeeds("audit", "shred", SCOPE, "--actor", "dpo", "--reason", "art17-7", "--workspace", str(workspace.path))
    _assert_nothing_opens_the_scope(noted, [before, *workspace.path.glob("ledger.db*")], workspace.keystore_path)
    with Ledger.open(workspace) as ledger:
        payload = ledger.read_payload(ledger.query(entry_type="key.destroyed")[0])
    assert payload["planted_copies"] == ["ff" * 16]
    db = sqlite3.connect(workspace.sqlite_path)
    assert db.execute(f"SELECT wrapped_key FROM fedgov_data_keys WHERE key_id = '{'ff' * 16}'").fetchone() == (None,)
    db.close()


def test_a_half_destroyed_row_is_still_shredded(workspace: Workspace) -> None:
    from tests.governance.attacks import sql

    _fill_and_note(workspace)
    sql(workspace, f"UPDATE fedgov_data_keys SET destroyed_at = '2020-01-01', destroyed_by = 'x' WHERE scope = '{SCOPE}'")
    succeeds("audit", "shred", SCOPE, "--actor", "dpo", "--reason", "art17-7", "--workspace", str(workspace.path))
    db = sqlite3.connect(workspace.sqlite_path)
    assert db.execute(f"SELECT wrapped_key FROM fedgov_data_keys WHERE scope = '{SCOPE}'").fetchall() == [(None,)]
    db.close()


def test_a_crash_then_a_restored_database_cannot_settle_the_keystore(workspace: Workspace, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The shred committed, the process died before the last keystore write, and the database holder puts the
    pre-shred database back: the next writer must not settle the keystore against it (it no longer holds the
    signed head), so the new KEK is never dropped, and nothing more is signed."""
    _fill_and_note(workspace)
    before = tmp_path / "before.db"
    shutil.copy(workspace.sqlite_path, before)
    calls = _shred_dying_before_the_last_keystore_write(workspace, monkeypatch)
    for suffix in ("-wal", "-shm"):
        Path(str(workspace.sqlite_path) + suffix).unlink(missing_ok=True)
    shutil.copy(before, workspace.sqlite_path)  # the database holder restores the old database
    from governance.errors import FedgovError

    with pytest.raises(FedgovError):
        with Ledger.open(workspace) as ledger:
            ledger.checkpoint()
    keys = read_keystore(workspace.keystore_path, PASSPHRASE)
    assert calls[1].kek in (keys.kek, *keys.old_keks)  # the new KEK is never dropped


def test_an_edited_kek_id_in_meta_is_named_not_obeyed(workspace: Workspace) -> None:
    from tests.governance.attacks import fails_with, sql

    _fill_and_note(workspace)
    succeeds("audit", "rotate-kek", "--actor", "ops", "--workspace", str(workspace.path))
    keystore = workspace.keystore_path.read_bytes()
    sql(workspace, "UPDATE fedgov_meta SET value = '0123456789abcdef' WHERE key = 'kek_id'")
    fails_with(["audit", "checkpoint", "--workspace", str(workspace.path)],
               "error: fedgov_meta.kek_id names key-encryption key 0123456789abcdef, but the last KEK replacement in "
               "the ledger installed ...: the meta row was edited")
    assert workspace.keystore_path.read_bytes() == keystore
