"""Attacks on issue 11's roles and sealing, audit of the audit and the signer's rule 3 (copied from the
i11-attack branch; its bundle, witness, run-directory and shred findings stay there).

Each test is one attack and asserts the SAFE outcome. A test that passes is a defence confirmed;
a test marked `xfail(strict=True, reason="FINDING: ...")` is an attack that works today.

Attackers: (a) the operator, who holds the database, the workspace and the passphrase; (b) a
database holder without the passphrase; (c) a hostile auditor or node-admin identity; (d) whoever
hands over a crafted bundle. Ledgers are built with the governance API, no Flower.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from governance import consent_store
from governance import entry_types as et
from governance.consent import ConsentRecord
from governance.node_store import register_nodes
from governance.access_policy import AccessDenied
from governance.audit_reads import record_read
from governance.identities import Identity
from governance.keystore import KeyMaterial, read_keystore
from governance.ledger import EntryDraft, Ledger, create_workspace
from governance.ledger import envelope
from governance.ledger.envelope import entry_aad
from governance.ledger.grants import wrap_to
from governance.ledger.roles import batch_message
from governance.ledger.signed_head import SigningRefusedError
from governance.errors import VerificationError
from governance.ledger.receipts import keep, read_receipts
from governance.ledger.verify import ReceiptsCheck, verify_ledger
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE, run_fedgov
from tests.governance.attacks import insert_forged_entry, recompute_cache, sql


def _reply(node: str, loss: float = 0.5) -> EntryDraft:
    return EntryDraft(et.ROUND_REPLY, {"node_id": node, "loss": loss}, et.node_scope(node), run_id="r1", round=1,
                      node_id=node)


def _db(ws: Workspace) -> sqlite3.Connection:
    return sqlite3.connect(ws.sqlite_path)


def _ledger_id(ws: Workspace) -> str:
    db = _db(ws)
    try:
        return db.execute("SELECT value FROM fedgov_meta WHERE key = 'ledger_id'").fetchone()[0]
    finally:
        db.close()


def _count(ws: Workspace, entry_type: str) -> int:
    db = _db(ws)
    try:
        return db.execute("SELECT COUNT(*) FROM fedgov_entries WHERE entry_type = ?", (entry_type,)).fetchone()[0]
    finally:
        db.close()


@pytest.fixture(scope="module")
def people() -> dict[str, Identity]:
    return {"alice": Identity.generate("alice", "auditor"), "oscar": Identity.generate("oscar", "operator"),
            "nina": Identity.generate("nina", "node-admin", "n1")}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, people: dict[str, Identity]) -> tuple[Path, KeyMaterial]:
    """Consent for n1 and n2, then three identities, then sealed replies of n1 and n2 (that process has exited)."""
    ws = create_workspace(tmp_path_factory.mktemp("attacks11") / ".fedgov", PASSPHRASE)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        register_nodes(ledger, [(n, hashlib.sha256(n.encode()).digest(), "radiology") for n in ("n1", "n2")], "op")
        consent_store.grant(ledger, [ConsentRecord(
            record_id=f"c-{n}", principal=n, team="radiology", purpose="screening", data_categories=["imaging"],
            privacy_notice_version="1", privacy_notice_hash=hashlib.sha256(b"notice").hexdigest(),
            collection_method="form", granted_at="2026-01-01T00:00:00Z") for n in ("n1", "n2")], "dpo")
        for person in people.values():
            ledger.register_identity(person.public, "admin")
        ledger.append([_reply("n1"), _reply("n2")], sign=True)
    return ws.path, read_keystore(ws.keystore_path, PASSPHRASE)


@pytest.fixture
def governed(template: tuple[Path, KeyMaterial], tmp_path: Path) -> Workspace:
    shutil.copytree(template[0], tmp_path / ".fedgov")
    return Workspace(tmp_path / ".fedgov")


@pytest.fixture
def keys(template: tuple[Path, KeyMaterial]) -> KeyMaterial:
    return template[1]


# -- promise 1: the operator cannot open sealed payloads ----------------------------------------------


def test_a_kek_holder_opens_no_sealed_payload_with_any_key_the_kek_unwraps(governed: Workspace,
                                                                           keys: KeyMaterial) -> None:
    """(a) The operator unwraps every data key with the KEK and tries each on every sealed row, outside fedgov."""
    db = _db(governed)
    sealed_ids = {k for (k,) in db.execute("SELECT key_id FROM fedgov_sealed_keys")}
    kek_rows = db.execute("SELECT key_id, wrapped_key FROM fedgov_data_keys WHERE wrapped_key IS NOT NULL").fetchall()
    sealed_rows = db.execute(f"SELECT seq, entry_type, key_id, ciphertext FROM fedgov_entries WHERE key_id IN "
                             f"({','.join('?' * len(sealed_ids))})", tuple(sealed_ids)).fetchall()
    db.close()
    assert sealed_rows and not sealed_ids & {k for k, _w in kek_rows}
    ledger_id = _ledger_id(governed)
    data_keys = [envelope.unwrap(keys.kek, w) for _k, w in kek_rows]
    for seq, entry_type, key_id, ct in sealed_rows:
        for key in data_keys:
            with pytest.raises(InvalidTag):
                AESGCM(key).decrypt(ct[:12], ct[12:], entry_aad(ledger_id, seq, entry_type, key_id))


def test_a_node_admin_is_granted_no_key_of_another_node_or_of_the_audit_log(governed: Workspace,
                                                                            people: dict[str, Identity]) -> None:
    """(c) A node-admin decrypts grants to her with her own code: only her node's scope is there."""
    db = _db(governed)
    scopes = {s for (s,) in db.execute(
        "SELECT COALESCE(d.scope, s.scope) FROM fedgov_key_grants g LEFT JOIN fedgov_data_keys d USING (key_id) "
        "LEFT JOIN fedgov_sealed_keys s USING (key_id) WHERE g.recipient = ?", (people["nina"].fingerprint,))}
    db.close()
    assert scopes == {"node:n1"}
    with Ledger.open(governed) as operator:  # an audit.read exists now
        record_read(operator, {"command": "audit log --decrypt"})
    with Ledger.open_as(governed, people["nina"]) as nina:
        read = nina.query(entry_type=et.AUDIT_READ)[-1]
        with pytest.raises(AccessDenied):
            nina.data_key_bytes(read.key_id)


def test_a_node_admin_who_rewrites_her_role_or_node_is_not_registered(governed: Workspace,
                                                                       people: dict[str, Identity]) -> None:
    """(c) nina keeps her private keys but claims role auditor, or node n2, in her own identity document."""
    from dataclasses import replace

    from governance.errors import UsageError

    nina = people["nina"]
    for forged in (replace(nina.public, role="auditor", node=None), replace(nina.public, node="n2")):
        with pytest.raises(UsageError, match="is not registered in this ledger"):
            Ledger.open_as(governed, replace(nina, public=forged))


def test_deleting_the_auditor_row_does_not_unseal_later_replies(governed: Workspace, keys: KeyMaterial,
                                                                people: dict[str, Identity]) -> None:
    """(b) A database holder deletes the auditor's registration row; the next coordinator writes replies under the KEK."""
    sql(governed, "DELETE FROM fedgov_identities WHERE fingerprint = ?", params=(people["alice"].fingerprint,))
    try:
        with Ledger.open(governed, keys=keys) as coordinator:
            [seq] = coordinator.append([_reply("n1", 0.25)], sign=True)
    except Exception:  # noqa: BLE001 - refusing to write at all is a safe outcome
        return
    with Ledger.open(governed, write=False, keys=keys) as operator:  # a later process, passphrase only
        with pytest.raises(AccessDenied):
            operator.read_payload(operator.get(seq))


def test_deleting_the_auditor_row_does_not_stop_recording_operator_reads(governed: Workspace,
                                                                         people: dict[str, Identity]) -> None:
    """(b/a) The database holder deletes the auditor row, then reads consent with the passphrase: no audit.read."""
    from governance.cli.options import open_payload_reader

    sql(governed, "DELETE FROM fedgov_identities WHERE fingerprint = ?", params=(people["alice"].fingerprint,))
    before = _count(governed, et.AUDIT_READ)
    try:
        with open_payload_reader(governed.path, None, None, what={"command": "consent list"}) as operator:
            operator.read_payload(operator.query(entry_type=et.CONSENT_GRANTED)[0])
    except Exception:  # noqa: BLE001 - a refusal is safe
        return
    assert _count(governed, et.AUDIT_READ) == before + 1


# -- promise 2: every decrypting read is recorded ----------------------------------------------------


def test_every_reading_command_records_its_read_before_showing(governed: Workspace) -> None:
    """(a) The operator reads through each CLI command: each leaves one audit.read behind (the operator's own)."""
    ws = str(governed.path)
    commands = [("audit", "log", "--decrypt"), ("audit", "log", "--team", "radiology"), ("audit", "show", "1", "--decrypt"),
                ("audit", "subject", "n1"), ("consent", "list"), ("consent", "show", "c-n1"),
                ("lineage", "export", "--format", "prov-json"), ("lineage", "affected", "--node", "n1"),
                ("audit", "export", "--out", str(governed.path.parent / "b.zip"))]
    for command in commands:
        before = _count(governed, et.AUDIT_READ)
        done = run_fedgov(*command, "--workspace", ws)
        assert done.returncode in (0, 1), (command, done.stderr)
        assert _count(governed, et.AUDIT_READ) == before + 1, command


def test_an_identitys_unsigned_audit_read_deleted_before_the_checkpoint_is_caught_by_its_receipt(
        governed: Workspace, keys: KeyMaterial, people: dict[str, Identity], tmp_path: Path) -> None:
    """(a/b) The auditor's read is recorded unsigned; the operator deletes the row and signs the next checkpoint.
    FIXED (was a FINDING: "leaving no trace"): the ledger alone still verifies, but the auditor keeps her receipt
    outside the database, and the ledger fails against it (through the CLI: tests/governance/test_receipts.py)."""
    receipts = tmp_path / "alice.receipts"
    with Ledger.open_as(governed, people["alice"], write=True) as auditor:
        seq = record_read(auditor, {"command": "audit log --decrypt", "node": "n1"})
        keep(receipts, auditor.receipts)
    sql(governed, f"DELETE FROM fedgov_entries WHERE seq >= {seq}", f"DELETE FROM fedgov_batch_auth WHERE first_seq >= {seq}")
    recompute_cache(governed)
    with Ledger.open(governed, keys=keys) as operator:
        operator.checkpoint()
    verify_ledger(governed)  # what nobody without the receipt can tell
    with pytest.raises(VerificationError, match=rf"^receipt of seq {seq}, appended by alice \(auditor, [0-9a-f]+\): the "
                                                rf"ledger holds only {seq} entries: entries this identity appended are gone"):
        verify_ledger(governed, then=ReceiptsCheck([(receipts, read_receipts(receipts))]))


def test_the_operator_cannot_record_a_read_in_the_auditors_name(governed: Workspace, keys: KeyMaterial,
                                                                people: dict[str, Identity]) -> None:
    """(a) The operator frames the auditor: an audit.read whose reader is alice, signed at once."""
    alice = people["alice"]
    forged = {"reader": {"who": alice.public.label, "role": "auditor", "name": "alice",
                         "fingerprint": alice.fingerprint},
              "command": "audit subject", "count": 3, "filter": {"node": "n2"}, "read_at": "2026-01-01T00:00:00Z"}
    with pytest.raises(Exception):  # noqa: PT011 - any refusal is safe
        with Ledger.open(governed, keys=keys) as operator:
            operator.append([EntryDraft(et.AUDIT_READ, forged, et.AUDIT_SCOPE)], sign=True)


def test_a_node_admin_cannot_record_a_read_in_the_auditors_name(governed: Workspace, keys: KeyMaterial,
                                                                people: dict[str, Identity]) -> None:
    """(c) nina (node-admin) signs an audit.read claiming alice read node n2; the operator's next checkpoint signs it."""
    alice = people["alice"]
    forged = {"reader": {"who": alice.public.label, "role": "auditor", "name": "alice",
                         "fingerprint": alice.fingerprint},
              "command": "audit subject", "count": 3, "filter": {"node": "n2"}, "read_at": "2026-01-01T00:00:00Z"}
    try:
        with Ledger.open_as(governed, people["nina"], write=True) as nina:
            [seq] = nina.append([EntryDraft(et.AUDIT_READ, forged, et.AUDIT_SCOPE)])
        with Ledger.open(governed, keys=keys) as operator:
            operator.checkpoint()
    except Exception:  # noqa: BLE001 - a refusal is safe
        return
    with Ledger.open_as(governed, alice) as auditor:
        shown = auditor.read_payload(auditor.get(seq))
    assert shown["reader"]["fingerprint"] != alice.fingerprint, "the ledger says alice read n2; nina wrote it"


# -- promise 3: the signer signs only what a key holder or a registered identity wrote -----------------


def test_a_registration_copied_from_another_ledger_is_refused(governed: Workspace, keys: KeyMaterial,
                                                              tmp_path: Path) -> None:
    """(b) A database holder copies a genuinely signed auditor registration from another ledger into this one."""
    mallory = Identity.generate("mallory", "auditor")
    other = create_workspace(tmp_path / "other" / ".fedgov", PASSPHRASE)
    with Ledger.open(other, PASSPHRASE) as ledger:
        ledger.register_identity(mallory.public, "admin")
    db = sqlite3.connect(other.sqlite_path)
    row = db.execute("SELECT fingerprint, document, signature, seq, created FROM fedgov_identities").fetchone()
    db.close()
    sql(governed, "INSERT INTO fedgov_identities (fingerprint, document, signature, seq, created) VALUES (?, ?, ?, ?, ?)",
        params=row)
    with pytest.raises(Exception, match="is not signed by this ledger's key"):
        with Ledger.open(governed, keys=keys) as operator:
            operator.append([_reply("n1")], sign=True)


def _forged_sealed_row(ws: Workspace, auditor: Identity) -> int:
    """A sealed round.reply anyone with public keys can make: a new key granted to the auditor, a row under it."""
    ledger_id = _ledger_id(ws)
    db = _db(ws)
    seq = db.execute("SELECT MAX(seq) + 1 FROM fedgov_entries").fetchone()[0]
    db.close()
    key, key_id = AESGCM.generate_key(bit_length=256), "cd" * 16
    sql(ws, "INSERT INTO fedgov_sealed_keys (key_id, scope, created) VALUES (?, 'node:n2', '2020')", params=(key_id,))
    sql(ws, "INSERT INTO fedgov_key_grants (key_id, recipient, wrapped, created) VALUES (?, ?, ?, '2020')",
        params=(key_id, auditor.fingerprint, wrap_to(auditor.public.x25519, key, ledger_id=ledger_id, key_id=key_id)))
    nonce = b"\x03" * 12
    ciphertext = nonce + AESGCM(key).encrypt(nonce, b'{"loss":9}', entry_aad(ledger_id, seq, et.ROUND_REPLY, key_id))
    return insert_forged_entry(ws, key_id, ciphertext, entry_type=et.ROUND_REPLY, node_id="n2", run_id="r1", round=1)


def test_an_identity_authenticator_cannot_be_stretched_or_replayed_over_a_spliced_row(
        governed: Workspace, keys: KeyMaterial, people: dict[str, Identity]) -> None:
    """(b) After alice's unsigned audit.read, a forged reply is spliced in under her authenticator (stretched, replayed)."""
    with Ledger.open_as(governed, people["alice"], write=True) as auditor:
        read = record_read(auditor, {"command": "audit log --decrypt"})
    forged = _forged_sealed_row(governed, people["alice"])
    assert forged == read + 1
    db = _db(governed)
    tag = db.execute(f"SELECT tag FROM fedgov_batch_auth WHERE first_seq = {read}").fetchone()[0]
    db.close()
    sql(governed, f"UPDATE fedgov_batch_auth SET count = 2 WHERE first_seq = {read}")  # stretched over the forgery
    with pytest.raises(SigningRefusedError):
        with Ledger.open(governed, keys=keys) as operator:
            operator.checkpoint()
    sql(governed, f"UPDATE fedgov_batch_auth SET count = 1 WHERE first_seq = {read}",
        f"INSERT INTO fedgov_batch_auth (first_seq, count, writer, tag) VALUES ({forged}, 1, ?, ?)",
        params=(people["alice"].fingerprint, tag))  # her tag replayed on the next seq
    with pytest.raises(SigningRefusedError):
        with Ledger.open(governed, keys=keys) as operator:
            operator.checkpoint()


def test_an_auditor_cannot_vouch_for_a_forged_audit_read_signed_before_her_registration(
        governed: Workspace, keys: KeyMaterial, people: dict[str, Identity]) -> None:
    """(b) A database holder moves an identity row's (unsigned) seq column to make a later batch look registered-before."""
    alice = people["alice"]
    with Ledger.open_as(governed, alice, write=True) as auditor:
        seq = record_read(auditor, {"command": "audit log --decrypt"})
    # A forged sealed row that claims alice as writer, with a signature alice never made.
    forged = _forged_sealed_row(governed, alice)
    ledger_id = _ledger_id(governed)
    db = _db(governed)
    leaf = db.execute(f"SELECT leaf_hash FROM fedgov_entries WHERE seq = {forged}").fetchone()[0]
    db.close()
    stranger = Identity.generate("alice", "auditor")  # same name, other keys
    sql(governed, f"INSERT INTO fedgov_batch_auth (first_seq, count, writer, tag) VALUES ({forged}, 1, ?, ?)",
        params=(alice.fingerprint, stranger.sign(batch_message(ledger_id, forged, [leaf], alice.fingerprint))))
    sql(governed, "UPDATE fedgov_identities SET seq = 0 WHERE fingerprint = ?", params=(alice.fingerprint,))
    with pytest.raises(SigningRefusedError):
        with Ledger.open(governed, keys=keys) as operator:
            operator.checkpoint()
    assert seq < forged


def test_an_auditor_registered_in_a_copy_is_not_taken_without_its_entry(governed: Workspace, keys: KeyMaterial,
                                                                        tmp_path: Path) -> None:
    """(a) The operator registers a hidden auditor in a scratch copy, then inserts only its signed row into production."""
    hidden = Identity.generate("backup-service", "auditor")
    scratch = tmp_path / "scratch" / ".fedgov"
    shutil.copytree(governed.path, scratch)
    with Ledger.open(Workspace(scratch), keys=keys) as copy:
        copy.register_identity(hidden.public, "admin")
    db = sqlite3.connect(Workspace(scratch).sqlite_path)
    row = db.execute("SELECT fingerprint, document, signature, seq, created FROM fedgov_identities WHERE fingerprint "
                     "= ?", (hidden.fingerprint,)).fetchone()
    db.close()
    sql(governed, "INSERT INTO fedgov_identities (fingerprint, document, signature, seq, created) VALUES (?, ?, ?, ?, ?)",
        params=row)
    try:
        with Ledger.open(governed, keys=keys) as coordinator:
            [seq] = coordinator.append([_reply("n2", 0.75)], sign=True)
    except Exception:  # noqa: BLE001 - a refusal is safe
        return
    assert _count(governed, et.IDENTITY_REGISTERED) == 3  # production records only alice, oscar, nina
    with Ledger.open_as(governed, hidden) as reader:  # safe: the unrecorded identity is not a recipient
        with pytest.raises(Exception):  # noqa: PT011
            reader.read_payload(reader.get(seq))


# -- the fixes' own cases: a swapped registration, a read recorded in another's name -------------------


def test_a_registration_row_swapped_for_one_signed_in_a_copy_at_the_same_seq_is_refused(
        governed: Workspace, keys: KeyMaterial, tmp_path: Path, people: dict[str, Identity]) -> None:
    """(a) A hidden auditor registered in a copy at seq S; the real ledger registers bob at S; bob's row is swapped."""
    hidden, bob = Identity.generate("backup-service", "auditor"), Identity.generate("bob", "auditor")
    scratch = Workspace(tmp_path / "scratch" / ".fedgov")
    shutil.copytree(governed.path, scratch.path)
    with Ledger.open(scratch, keys=keys) as copy:
        copy.register_identity(hidden.public, "admin")
    with Ledger.open(governed, keys=keys) as ledger:
        seq, _granted = ledger.register_identity(bob.public, "admin")
    db = sqlite3.connect(scratch.sqlite_path)
    row = db.execute("SELECT fingerprint, document, signature, seq, created FROM fedgov_identities WHERE fingerprint "
                     "= ?", (hidden.fingerprint,)).fetchone()
    db.close()
    assert row[3] == seq
    sql(governed, "DELETE FROM fedgov_identities WHERE fingerprint = ?", params=(bob.fingerprint,))
    sql(governed, "INSERT INTO fedgov_identities (fingerprint, document, signature, seq, created) VALUES (?, ?, ?, ?, ?)",
        params=row)
    with Ledger.open_readonly(governed) as holder:  # without a secret the seqs match: what a stranger checks passes
        assert hidden.fingerprint in holder.roles().identities
    with pytest.raises(Exception, match=rf"^the fedgov_identities row of seq {seq} differs from its "
                                        r"identity\.registered entry's payload: the identity table was edited"):
        Ledger.open(governed, keys=keys)
    with pytest.raises(Exception, match=rf"^the fedgov_identities row of seq {seq} differs"):  # alice reads ledger:system
        Ledger.open_as(governed, people["alice"])


def test_a_read_recorded_in_anothers_name_by_modified_code_is_shown_flagged(
        governed: Workspace, people: dict[str, Identity]) -> None:
    """(c) nina runs modified fedgov that names alice as reader; alice's listing shows nina as the writer, flagged."""
    alice, nina = people["alice"], people["nina"]
    claimed = {"who": alice.public.label, "role": "auditor", "name": "alice", "fingerprint": alice.fingerprint}

    class Hostile(Ledger):
        reader = property(lambda self: claimed)

    with Hostile.open_as(governed, nina, write=True) as hostile:
        seq = record_read(hostile, {"command": "audit subject", "node": "n2"})
    with Ledger.open_as(governed, alice) as auditor:
        shown = auditor.read_payload(auditor.get(seq))
    assert shown["reader"]["fingerprint"] == nina.fingerprint and shown["claimed_reader"] == claimed
    assert shown["reader_mismatch"] == f"the payload names {alice.public.label!r} as reader but the row was written " \
                                       f"by {nina.public.label!r}"
