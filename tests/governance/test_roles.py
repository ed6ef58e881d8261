"""Roles and identities (docs/access-policy.md, docs/ledger-format.md §4, §5 rule 3).

An operator can append but not read what nodes said once an auditor exists; an auditor reads
every payload with its own key alone; the signer still refuses rows nobody it trusts wrote,
sealed or not; every decrypting read is recorded before anything is shown.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from governance import entry_types as et
from governance.access_policy import SEALED_LABEL, AccessDenied
from governance.identities import Identity, read_identity, read_public, write_identity
from governance.keystore import KeyMaterial, read_keystore
from governance.ledger import EntryDraft, KeyDestroyedError, Ledger, create_workspace
from governance.ledger.envelope import entry_aad
from governance.ledger.grants import GrantError, grant_keys_to, open_grant, wrap_to
from governance.ledger.signed_head import SigningRefusedError
from governance.ledger.verify import verify_ledger
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE
from tests.governance.attacks import insert_forged_entry, sql

REPLY = EntryDraft(et.ROUND_REPLY, {"node_id": "n1", "loss": 0.5}, "node:n1", run_id="r1", round=1, node_id="n1")


@pytest.fixture(scope="module")
def people() -> dict[str, Identity]:
    return {"alice": Identity.generate("alice", "auditor"), "oscar": Identity.generate("oscar", "operator"),
            "nina": Identity.generate("nina", "node-admin", "n1")}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, people: dict[str, Identity]) -> tuple[Path, KeyMaterial]:
    """A ledger with a reply written before any auditor, then three identities, then sealed replies."""
    ws = create_workspace(tmp_path_factory.mktemp("roles") / ".fedgov", PASSPHRASE)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        ledger.append([REPLY, EntryDraft(et.CONSENT_GRANTED, {"record_id": "c1"}, "node:n2", node_id="n2")], sign=True)
        for person in people.values():
            ledger.register_identity(person.public, "admin")
        ledger.append([REPLY, EntryDraft(et.ROUND_REPLY, {"node_id": "n2"}, "node:n2", run_id="r1", round=1,
                                         node_id="n2")], sign=True)
    return ws.path, read_keystore(ws.keystore_path, PASSPHRASE)


@pytest.fixture
def governed(template: tuple[Path, KeyMaterial], tmp_path: Path) -> Workspace:
    shutil.copytree(template[0], tmp_path / ".fedgov")
    return Workspace(tmp_path / ".fedgov")


@pytest.fixture
def keys(template: tuple[Path, KeyMaterial]) -> KeyMaterial:
    """The operator's keys, read once (scrypt is slow on purpose)."""
    return template[1]


def _payloads(ledger: Ledger) -> dict[int, object]:
    out: dict[int, object] = {}
    for entry in ledger.query():
        try:
            out[entry.seq] = ledger.read_payload(entry)
        except AccessDenied:
            out[entry.seq] = SEALED_LABEL
    return out


def test_an_identity_file_opens_only_with_its_passphrase_and_names_its_keys(tmp_path: Path) -> None:
    alice = Identity.generate("alice", "auditor")
    private, public = write_identity(alice, tmp_path, "secret")
    assert oct(private.stat().st_mode & 0o777) == "0o600"
    assert read_identity(private, "secret") == alice
    assert read_public(public) == alice.public == read_public(private)
    assert json.loads(public.read_text())["fingerprint"] == alice.fingerprint and len(alice.fingerprint) == 32
    with pytest.raises(Exception, match=f"wrong passphrase for identity {private}"):
        read_identity(private, "wrong")
    document = json.loads(public.read_text())
    document["role"] = "operator"
    public.write_text(json.dumps(document))
    with pytest.raises(Exception, match="its fingerprint does not match its keys"):
        read_public(public)


def test_the_operator_cannot_read_sealed_payloads_an_auditor_reads_everything(governed: Workspace, keys: KeyMaterial,
                                                                              people: dict[str, Identity]) -> None:
    with Ledger.open(governed, write=False, keys=keys) as operator:
        seen = _payloads(operator)
        sealed = [e for e in operator.query(entry_type=et.ROUND_REPLY) if e.seq > 3]
        with pytest.raises(AccessDenied, match=r"^role operator may not read round\.reply payloads "
                                               r"\(docs/access-policy\.md\); read with an auditor identity "
                                               r"\(--identity\)$"):
            operator.read_payload(sealed[0])
        # Not only the policy: the operator's keys do not open the sealed data key at all.
        with pytest.raises(AccessDenied, match="sealed to auditors and the operator's keys do not open it"):
            operator.data_key_bytes(sealed[0].key_id)
    assert [seen[s] for s in sorted(seen) if s > 5] == [SEALED_LABEL, SEALED_LABEL]
    assert seen[2] == {"record_id": "c1"}  # consent: operator-readable
    with Ledger.open_as(governed, people["alice"]) as auditor:
        everything = _payloads(auditor)
    assert SEALED_LABEL not in everything.values()
    assert everything[1] == {"node_id": "n1", "loss": 0.5}  # written before she was registered, granted to her


def test_operator_and_node_admin_identities_read_what_the_policy_lets_them(governed: Workspace,
                                                                           people: dict[str, Identity]) -> None:
    with Ledger.open_as(governed, people["oscar"]) as oscar:
        seen = _payloads(oscar)
    assert seen[2] == {"record_id": "c1"} and seen[6] == seen[7] == SEALED_LABEL
    with Ledger.open_as(governed, people["nina"]) as nina:
        replies = {e.node_id: e for e in nina.query(entry_type=et.ROUND_REPLY) if e.seq > 4}
        assert nina.read_payload(replies["n1"]) == {"node_id": "n1", "loss": 0.5}
        with pytest.raises(AccessDenied, match=r"^role node-admin \(node n1\) may not read round\.reply payloads of "
                                               r"node n2 \(docs/access-policy\.md\)$"):
            nina.read_payload(replies["n2"])


def test_an_auditor_appends_audit_read_without_the_passphrase_and_the_signer_vouches_for_it(
        governed: Workspace, keys: KeyMaterial, people: dict[str, Identity]) -> None:
    with Ledger.open_as(governed, people["alice"], write=True) as auditor:
        read = {"reader": auditor.reader, "command": "audit log --decrypt"}  # an audit.read names its writer
        [seq] = auditor.append([EntryDraft(et.AUDIT_READ, read, et.AUDIT_SCOPE)])
        with pytest.raises(Exception, match="may append only audit.read entries, not round.reply"):
            auditor.append([REPLY])
    assert verify_ledger(governed).unsigned_tail == 1
    with Ledger.open(governed, keys=keys) as operator:
        operator.checkpoint()
        with pytest.raises(AccessDenied, match="may not read audit.read payloads"):
            operator.read_payload(operator.get(seq))
    assert verify_ledger(governed).unsigned_tail == 0
    with Ledger.open_as(governed, people["alice"]) as auditor:
        assert auditor.read_payload(auditor.get(seq)) == read


def _forge_sealed_row(ws: Workspace, auditor: Identity, entry_type: str = et.ROUND_REPLY) -> int:
    """What a database holder can do with public keys only: a sealed key granted to the auditor, a row under it."""
    db = sqlite3.connect(ws.sqlite_path)
    ledger_id = db.execute("SELECT value FROM fedgov_meta WHERE key = 'ledger_id'").fetchone()[0]
    seq = db.execute("SELECT MAX(seq) + 1 FROM fedgov_entries").fetchone()[0]
    db.close()
    key, key_id = AESGCM.generate_key(bit_length=256), "ab" * 16
    sql(ws, "INSERT INTO fedgov_sealed_keys (key_id, scope, created) VALUES (?, 'node:n1', '2020')", params=(key_id,))
    sql(ws, "INSERT INTO fedgov_key_grants (key_id, recipient, wrapped, created) VALUES (?, ?, ?, '2020')",
        params=(key_id, auditor.fingerprint, wrap_to(auditor.public.x25519, key, ledger_id=ledger_id, key_id=key_id)))
    nonce = b"\x01" * 12
    ciphertext = nonce + AESGCM(key).encrypt(nonce, b'{"loss":0}', entry_aad(ledger_id, seq, entry_type, key_id))
    return insert_forged_entry(ws, key_id, ciphertext, entry_type=entry_type)


def test_a_forged_sealed_row_in_the_unsigned_tail_is_never_signed(governed: Workspace, keys: KeyMaterial,
                                                                  people: dict[str, Identity]) -> None:
    seq = _forge_sealed_row(governed, people["alice"])
    with Ledger.open_as(governed, people["alice"]) as auditor:  # it even decrypts for the auditor: not evidence
        assert auditor.read_payload(auditor.get(seq)) == {"loss": 0}
    with Ledger.open(governed, keys=keys) as operator, pytest.raises(
            SigningRefusedError, match=rf"^refusing to sign: entry seq {seq} is sealed \(the signer cannot decrypt "
                                       r"it\) and carries no writer authenticator"):
        operator.checkpoint()


def test_a_forged_authenticator_or_an_identity_writing_what_it_may_not_is_refused(
        governed: Workspace, keys: KeyMaterial, people: dict[str, Identity]) -> None:
    from governance.ledger.roles import batch_message

    seq = _forge_sealed_row(governed, people["alice"])
    sql(governed, f"INSERT INTO fedgov_batch_auth (first_seq, count, writer, tag) VALUES ({seq}, 1, 'ledger', ?)",
        params=(b"\x00" * 32,))
    with Ledger.open(governed, keys=keys) as operator, pytest.raises(
            SigningRefusedError, match=rf"entries {seq}..{seq}: their writer authenticator does not verify"):
        operator.checkpoint()
    # The auditor signs a round.reply as its own: identities append audit.read only.
    db = sqlite3.connect(governed.sqlite_path)
    leaf, ledger_id = db.execute(f"SELECT leaf_hash FROM fedgov_entries WHERE seq = {seq}").fetchone()[0], \
        db.execute("SELECT value FROM fedgov_meta WHERE key = 'ledger_id'").fetchone()[0]
    db.close()
    alice = people["alice"]
    signature = alice.sign(batch_message(ledger_id, seq, [leaf], alice.fingerprint))
    sql(governed, f"UPDATE fedgov_batch_auth SET writer = ?, tag = ? WHERE first_seq = {seq}",
        params=(alice.fingerprint, signature))
    with Ledger.open(governed, keys=keys) as operator, pytest.raises(
            SigningRefusedError, match=rf"entry seq {seq}: identity alice \(role auditor\) may append only "
                                       "audit.read entries, not round.reply"):
        operator.checkpoint()


def test_an_auditor_cannot_slip_in_an_operator_row_under_a_key_granted_to_it(governed: Workspace, keys: KeyMaterial,
                                                                            people: dict[str, Identity]) -> None:
    """Auditors hold the operator-readable data keys: AEAD alone no longer proves a writer wrote a row."""
    with Ledger.open_as(governed, people["alice"]) as auditor:
        consent = auditor.query(entry_type=et.CONSENT_GRANTED)[0]
        key = auditor.data_key_bytes(consent.key_id)
        seq = auditor.size()
        ledger_id = auditor.ledger_id
    nonce = b"\x02" * 12
    ciphertext = nonce + AESGCM(key).encrypt(nonce, b'{"record_id":"forged"}',
                                             entry_aad(ledger_id, seq, et.CONSENT_GRANTED, consent.key_id))
    insert_forged_entry(governed, consent.key_id, ciphertext, node_id="n2")
    with Ledger.open(governed, keys=keys) as operator, pytest.raises(
            SigningRefusedError, match=rf"^refusing to sign: entry seq {seq} carries no writer authenticator"):
        operator.checkpoint()


def test_shredding_a_scope_destroys_its_sealed_keys_and_grants(governed: Workspace,
                                                               people: dict[str, Identity]) -> None:
    with Ledger.open(governed) as operator:
        operator.shred("node:n1", "dpo", "erasure request 7")
        destroyed = operator.read_payload(operator.query(entry_type=et.KEY_DESTROYED)[-1])
    assert len(destroyed["sealed_key_ids"]) == 1
    db = sqlite3.connect(governed.sqlite_path)
    assert db.execute("SELECT COUNT(*) FROM fedgov_key_grants k JOIN fedgov_sealed_keys s USING (key_id) "
                      "WHERE s.scope = 'node:n1' AND k.wrapped IS NOT NULL").fetchone() == (0,)
    db.close()
    with Ledger.open_as(governed, people["alice"]) as auditor:
        for entry in auditor.query(node_id="n1", entry_type=et.ROUND_REPLY):
            with pytest.raises(KeyDestroyedError):
                auditor.read_payload(entry)
    assert verify_ledger(governed).unsigned_tail == 0


def test_grants_open_only_for_their_recipient_key_and_ledger(governed: Workspace, keys: KeyMaterial,
                                                             people: dict[str, Identity]) -> None:
    regulator = Identity.generate("regulator", "auditor")
    with Ledger.open_as(governed, people["alice"]) as auditor:
        entries = auditor.query(entry_type=et.ROUND_REPLY)
        granted = grant_keys_to(auditor, regulator.public, [e.key_id for e in entries])
        ledger_id = auditor.ledger_id
        expected = {e.key_id: auditor.data_key_bytes(e.key_id) for e in entries}
    assert {k: open_grant(regulator, w, ledger_id=ledger_id, key_id=k) for k, w in granted} == expected
    assert {len(w) for _k, w in granted} == {92}
    key_id, wrapped = granted[0]
    with pytest.raises(GrantError):
        open_grant(people["alice"], wrapped, ledger_id=ledger_id, key_id=key_id)
    with pytest.raises(GrantError):
        open_grant(regulator, wrapped, ledger_id="another-ledger", key_id=key_id)
    with Ledger.open(governed, write=False, keys=keys) as operator:  # the operator cannot pass on what it cannot open
        passed_on = grant_keys_to(operator, regulator.public, list(expected), skip_unreadable=True)
        assert [k for k, _w in passed_on] == [entries[0].key_id]  # only the reply written before the auditor
        with pytest.raises(AccessDenied):
            grant_keys_to(operator, regulator.public, [entries[-1].key_id])


def test_a_grant_follows_the_spec_byte_for_byte(governed: Workspace, people: dict[str, Identity]) -> None:
    """A stranger opens a stored grant from docs/ledger-format.md §4 alone, with raw primitives."""
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    alice = people["alice"]
    db = sqlite3.connect(governed.sqlite_path)
    ledger_id = db.execute("SELECT value FROM fedgov_meta WHERE key = 'ledger_id'").fetchone()[0]
    key_id, wrapped = db.execute("SELECT key_id, wrapped FROM fedgov_key_grants WHERE recipient = ? LIMIT 1",
                                 (alice.fingerprint,)).fetchone()
    db.close()
    ephemeral, nonce, sealed = wrapped[:32], wrapped[32:44], wrapped[44:]
    recipient = alice.public.x25519
    shared = X25519PrivateKey.from_private_bytes(alice.x25519_private).exchange(
        X25519PublicKey.from_public_bytes(ephemeral))
    kek = HKDF(hashes.SHA256(), 32, salt=ephemeral + recipient, info=b"fedgov-grant-v1").derive(shared)
    aad = ('{"key_id":"%s","ledger_id":"%s","purpose":"fedgov-grant-v1","recipient":"%s"}'
           % (key_id, ledger_id, base64.b64encode(recipient).decode())).encode()
    assert len(AESGCM(kek).decrypt(nonce, sealed, aad)) == 32


def test_a_ledger_without_an_auditor_is_unchanged(workspace: Workspace) -> None:
    with Ledger.open(workspace) as ledger:
        ledger.append([REPLY], sign=True)
        assert not ledger.policy_in_force
        assert ledger.read_payload(ledger.get(1)) == {"node_id": "n1", "loss": 0.5}
    db = sqlite3.connect(workspace.sqlite_path)
    tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    assert tables == {"fedgov_meta", "fedgov_entries", "fedgov_tree_nodes", "fedgov_checkpoints", "fedgov_data_keys"}


def test_an_identity_registered_by_hand_in_the_database_is_refused(governed: Workspace, keys: KeyMaterial) -> None:
    mallory = Identity.generate("mallory", "auditor")
    sql(governed, "INSERT INTO fedgov_identities (fingerprint, document, signature, seq, created) VALUES (?, ?, ?, 1, "
        "'2020')", params=(mallory.fingerprint, json.dumps(mallory.public.to_document()), b"\x00" * 64))
    with pytest.raises(Exception, match=f"registered identity {mallory.fingerprint} in fedgov_identities is not signed "
                                        "by this ledger's key"):
        with Ledger.open(governed, keys=keys) as operator:
            operator.append([REPLY])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_moved_ledger_keeps_its_identities_sealed_keys_grants_and_authenticators(
        governed: Workspace, keys: KeyMaterial, people: dict[str, Identity], tmp_path: Path, backend: str,
        request: pytest.FixtureRequest) -> None:
    from governance.ledger.move import WHAT, move_ledger

    with Ledger.open(governed, keys=keys) as operator:  # one batch with an authenticator
        operator.append([REPLY], sign=True)
    url = f"sqlite:///{tmp_path / 'moved.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    report = move_ledger(governed, url)
    source = sqlite3.connect(governed.sqlite_path)  # left as it was: a backup
    for table in ("fedgov_identities", "fedgov_sealed_keys", "fedgov_key_grants", "fedgov_batch_auth"):
        assert report.rows[table] == source.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] > 0, WHAT[table]
    source.close()
    moved = Workspace(governed.path)
    with Ledger.open_as(moved, people["alice"]) as auditor:
        assert auditor.read_payload(auditor.query(entry_type=et.ROUND_REPLY)[-1]) == {"node_id": "n1", "loss": 0.5}
    with Ledger.open(moved, keys=keys) as operator:  # the signer still vouches for what the copy holds
        operator.append([REPLY], sign=True)
