"""A bundle carries the data keys its exporter can open, wrapped to one recipient, and answers like the workspace.

Issue 11: "`fedgov audit subject` gives the same answer on the workspace and on an exported
bundle, decrypted with an auditor's key." The history is tests/governance/query_story.py,
written with the governance API after auditor alice was registered, then node n2 shredded;
a witness cosigned the newest checkpoint before the exports.
"""

from __future__ import annotations

import base64
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from governance import entry_types as et
from governance.bundle_keys import NOT_GRANTED, SEALED, SHREDDED, member_name, read_wrapped_keys
from governance.bundle_source import BundleSource
from governance.errors import UsageError
from governance.evidence import LedgerSource
from governance.identities import Identity, PublicIdentity, write_identity
from governance.ledger import Ledger, create_workspace
from governance.ledger.roles import registration_message
from governance.subject import subject_report
from governance.verify import __main__ as travelling
from governance.verify.bundle_check import verify_bundle
from governance.verify.checkpoint import parse_trusted_keys
from governance.witness import Witness, WorkspaceSource, init_witness, store_cosignature
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE, run_fedgov
from tests.governance.query_story import write_story

ALICE_PASS = {"FEDGOV_IDENTITY_PASSPHRASE": "alice-secret"}


@dataclass
class Exported:
    ws: Workspace
    alice: Identity
    alice_file: Path
    witness: Witness
    on_workspace: str  # `audit subject n2 --format json` as alice, on the workspace
    by_alice: Path  # exported with --identity alice --wrap-to alice.pub
    by_operator: Path  # exported with the passphrase --wrap-to alice.pub
    said_alice: str
    said_operator: str


def _ok(*args: str, env: dict | None = None):
    done = run_fedgov(*args, env=env)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    root = tmp_path_factory.mktemp("wrapped")
    ws = create_workspace(root / ".fedgov", PASSPHRASE)
    alice = Identity.generate("alice", "auditor")
    write_identity(alice, root, ALICE_PASS["FEDGOV_IDENTITY_PASSPHRASE"])
    with Ledger.open(ws, PASSPHRASE) as ledger:
        ledger.register_identity(alice.public, "operator")
        write_story(ledger)
        ledger.shred("node:n2", "dpo", "GDPR Art. 17 request 12")
    init_witness(root / "witness", "witness.example/w1")
    witness = Witness(root / "witness")
    source = WorkspaceSource(ws.path)
    try:
        store_cosignature(ws.path / "cosignatures", witness.cosign(source), witness.key)
    finally:
        source.close()
    as_alice = ("--identity", str(root / "alice.identity"))
    on_workspace = _ok("audit", "subject", "n2", "--format", "json", "-w", str(ws.path), *as_alice,
                       env=ALICE_PASS).stdout
    said_alice = _ok("audit", "export", "-w", str(ws.path), *as_alice, "--wrap-to", str(root / "alice.pub"),
                     "--out", str(root / "by-alice.zip"), env=ALICE_PASS)
    said_operator = _ok("audit", "export", "-w", str(ws.path), "--wrap-to", str(root / "alice.pub"),
                        "--out", str(root / "by-operator.zip"))
    return Exported(ws, alice, root / "alice.identity", witness, on_workspace, root / "by-alice.zip",
                    root / "by-operator.zip", said_alice.stdout + said_alice.stderr,
                    said_operator.stdout + said_operator.stderr)


def _members(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_subject_on_the_auditors_bundle_gives_the_same_json_as_on_the_workspace(exported: Exported) -> None:
    on_bundle = _ok("audit", "subject", "n2", "--format", "json", "--bundle", str(exported.by_alice), "--identity",
                    str(exported.alice_file), env=ALICE_PASS)
    assert on_bundle.stdout == exported.on_workspace
    report = json.loads(on_bundle.stdout)
    assert report["shredded"]["reason"] == "GDPR Art. 17 request 12" and report["runs"]  # erased, still listed
    assert on_bundle.stderr.startswith(f"note: {exported.by_alice} verified with the key shipped in it")


def test_every_node_reads_the_same_from_the_bundle_as_from_the_ledger(exported: Exported) -> None:
    bundle = BundleSource(exported.by_alice, exported.alice)
    with Ledger.open_as(exported.ws, exported.alice) as ledger:
        for node in ("n1", "n2", "n3"):
            assert subject_report(bundle, node) == subject_report(LedgerSource(ledger), node)


def test_the_export_says_how_many_payloads_the_recipient_cannot_read_and_why(exported: Exported) -> None:
    assert "wrapped " in exported.said_alice and "to alice (auditor, " in exported.said_alice
    assert "note: alice will not be able to read 3 payloads: their data keys were crypto-shredded\n" \
        in exported.said_alice
    assert "sealed" not in exported.said_alice
    assert ("payloads: their data keys were sealed to auditors, which the operator's passphrase does not open (export "
            "with an auditor identity, --identity)\n") in exported.said_operator


def test_shredded_keys_are_never_included(exported: Exported) -> None:
    with Ledger.open_as(exported.ws, exported.alice) as ledger:
        [shred] = ledger.query(entry_type=et.KEY_DESTROYED)
        destroyed = ledger.read_payload(shred)
    gone = set(destroyed["key_ids"]) | set(destroyed.get("sealed_key_ids", []))
    for bundle in (exported.by_alice, exported.by_operator):
        wrapped = read_wrapped_keys(_members(bundle), exported.alice.fingerprint)
        assert gone & set(wrapped.payloads) and not gone & set(wrapped.grants)
        assert {k: wrapped.missing[k] for k in gone & set(wrapped.payloads)} == dict.fromkeys(
            gone & set(wrapped.payloads), SHREDDED)


def test_the_operators_bundle_holds_no_sealed_key_and_subject_says_so(exported: Exported) -> None:
    wrapped = read_wrapped_keys(_members(exported.by_operator), exported.alice.fingerprint)
    assert SEALED in wrapped.missing.values() and NOT_GRANTED not in wrapped.missing.values()
    refused = run_fedgov("audit", "subject", "n1", "--bundle", str(exported.by_operator), "--identity",
                         str(exported.alice_file), env=ALICE_PASS)
    assert refused.returncode == 1 and refused.stdout == ""
    error = refused.stderr.splitlines()[-1]
    assert error.startswith("error: entry seq ") and error.endswith(
        "(round.reply): its data key is not in the bundle: it was sealed to auditors, which the operator's "
        "passphrase does not open (export with an auditor identity, --identity) (docs/access-policy.md)")


def test_a_bundle_read_without_an_identity_says_its_payloads_are_unreadable(exported: Exported) -> None:
    done = run_fedgov("audit", "subject", "n1", "--bundle", str(exported.by_alice))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"error: {exported.by_alice}: a bundle's payloads are encrypted; only an identity it carries "
                           "data keys for can read them: pass --identity FILE (the exporter adds them with `fedgov "
                           "audit export --wrap-to FILE.pub`)\n")


def test_an_identity_the_bundle_carries_no_keys_for_is_told_whom_it_does(exported: Exported) -> None:
    bob = Identity.generate("bob", "auditor")
    with pytest.raises(UsageError, match=f"carries no data keys wrapped to identity bob .*it carries keys for "
                                         f"{exported.alice.fingerprint}"):
        BundleSource(exported.by_alice, bob)


def test_the_wrapped_keys_and_identities_are_listed_members_and_the_bundle_verifies(exported: Exported) -> None:
    members = _members(exported.by_alice)
    manifest = json.loads(members["manifest.json"])
    fp = exported.alice.fingerprint
    assert {member_name(fp), f"identities/{fp}.pub"} <= set(manifest["files"])
    assert verify_bundle(exported.by_alice).entries == len(members["entries.jsonl"].splitlines())
    document = json.loads(members[f"identities/{fp}.pub"])
    public = PublicIdentity.from_document(document, "identities")
    assert (public, document["registered_seq"]) == (exported.alice.public, 1)
    [key] = parse_trusted_keys(members["trusted_keys"].decode(), "trusted_keys")
    ledger_id = json.loads(members["meta.json"])["ledger_id"]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    Ed25519PublicKey.from_public_bytes(key.public_key).verify(base64.b64decode(document["ledger_signature"]),
                                                              registration_message(ledger_id, public, 1))


def test_the_travelling_verifier_requires_a_witness_cosignature(exported: Exported, capsys) -> None:
    vkey = exported.witness.key.to_text()
    assert travelling.main([str(exported.by_alice), "--require-cosigned-by", vkey]) == 0
    assert "\ncosigned: tree size " in capsys.readouterr().out
    other = Identity.generate("w2", "auditor")  # any Ed25519 key the witness is not
    from governance.witness import witness_key
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    stranger = witness_key("witness.example/w2", Ed25519PrivateKey.from_private_bytes(other.ed25519_seed))
    assert travelling.main([str(exported.by_alice), "--require-cosigned-by", stranger.to_text()]) == 1
    assert "error: no cosignature by witness 'witness.example/w2'" in capsys.readouterr().err


def test_each_export_is_recorded_as_a_read_naming_its_recipient(exported: Exported) -> None:
    with Ledger.open_as(exported.ws, exported.alice) as ledger:
        reads = [ledger.read_payload(e) for e in ledger.query(entry_type=et.AUDIT_READ)]
    exports = [(r["reader"]["who"], r["filter"]["wrap_to"]) for r in reads if r["command"] == "audit export"]
    assert exports == [(exported.alice.public.label, exported.alice.public.label),
                       ("operator (passphrase)", exported.alice.public.label)]
