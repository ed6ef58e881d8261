"""docs/ledger-format.md §4, §4.3 and §10.3 are enough to read a bundle's payloads with the keys wrapped to you.

`stranger_opens` below uses only the standard library, `cryptography`'s primitives and the spec's
text ("Opening a payload with the wrapped keys"): no fedgov code. It must read every payload whose
key the bundle carries exactly as fedgov's own reader of the ledger does.
"""

from __future__ import annotations

import base64
import json
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from governance import entry_types as et
from governance.identities import Identity, write_identity
from governance.ledger import EntryDraft, Ledger, create_workspace
from tests.fedgov_command import PASSPHRASE, run_fedgov


def _jcs(value: dict) -> bytes:
    """RFC 8785 for the objects used here (ASCII strings and small integers): sorted members, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def stranger_opens(bundle: Path, x25519_private: bytes) -> dict[int, dict]:
    """Every payload of the bundle whose data key is wrapped to this X25519 private key, by seq."""
    private = X25519PrivateKey.from_private_bytes(x25519_private)
    mine = base64.b64encode(private.public_key().public_bytes_raw()).decode()
    with zipfile.ZipFile(bundle) as archive:
        ledger_id = json.loads(archive.read("meta.json"))["ledger_id"]
        files = [n for n in archive.namelist() if n.startswith("wrapped_keys/")]
        ours = [json.loads(archive.read(n)) for n in files]
        [wrapped] = [w for w in ours if w["recipient"]["x25519"] == mine]
        entries = [json.loads(line) for line in archive.read("entries.jsonl").splitlines()]
    keys = {}
    for item in wrapped["keys"]:
        grant = base64.b64decode(item["grant"])
        ephemeral, nonce, sealed = grant[:32], grant[32:44], grant[44:]
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral))
        wk = HKDF(hashes.SHA256(), 32, salt=ephemeral + base64.b64decode(mine), info=b"fedgov-grant-v1").derive(shared)
        aad = _jcs({"key_id": item["key_id"], "ledger_id": ledger_id, "purpose": "fedgov-grant-v1", "recipient": mine})
        keys[item["key_id"]] = AESGCM(wk).decrypt(nonce, sealed, aad)
    opened = {}
    for entry in entries:
        if entry["key_id"] not in keys:
            continue
        raw = base64.b64decode(entry["ciphertext"])
        aad = _jcs({"entry_type": entry["entry_type"], "key_id": entry["key_id"], "ledger_id": ledger_id,
                    "purpose": "fedgov-entry-v1", "seq": entry["seq"]})
        opened[entry["seq"]] = json.loads(AESGCM(keys[entry["key_id"]]).decrypt(raw[:12], raw[12:], aad))
    return opened


@pytest.fixture(scope="module")
def auditor_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Identity]:
    root = tmp_path_factory.mktemp("stranger-opens")
    ws = create_workspace(root / ".fedgov", PASSPHRASE)
    alice = Identity.generate("alice", "auditor")
    write_identity(alice, root, "alice-secret")
    with Ledger.open(ws, PASSPHRASE) as ledger:
        ledger.register_identity(alice.public, "operator")
        ledger.append([EntryDraft(et.ROUND_REPLY, {"loss": 0.5, "node": n}, et.node_scope(n), run_id="r1", round=1,
                                  node_id=n) for n in ("n1", "n2")]
                      + [EntryDraft(et.RUN_FINISHED, {"status": "completed"}, et.run_scope("r1"), run_id="r1")],
                      sign=True)
    done = run_fedgov("audit", "export", "-w", str(ws.path), "--identity", str(root / "alice.identity"),
                      "--wrap-to", str(root / "alice.pub"), "--out", str(root / "b.zip"),
                      env={"FEDGOV_IDENTITY_PASSPHRASE": "alice-secret"})
    assert done.returncode == 0, done.stderr
    return root / "b.zip", ws.path, alice


def test_a_stranger_reads_every_payload_the_bundle_carries_a_key_for_as_fedgov_does(auditor_bundle) -> None:
    bundle, workspace, alice = auditor_bundle
    opened = stranger_opens(bundle, alice.x25519_private)
    from governance.workspace import Workspace

    with Ledger.open_as(Workspace(workspace), alice) as ledger:
        expected = {e.seq: ledger.read_payload(e) for e in ledger.query() if e.seq in opened}
    assert opened == expected
    assert {p.get("node") for p in opened.values()} >= {"n1", "n2"}  # the sealed replies too
