"""Details of docs/ledger-format.md that a stranger had to guess before (item 9)."""

from __future__ import annotations

import base64
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance import entry_types as et
from governance.ledger import EntryDraft, Ledger
from governance.ledger.checkpoint import public_key_bytes, sign_checkpoint, verify_checkpoint
from governance.verify.checkpoint import SIG_PREFIX, CheckpointError, VerifierKey, key_id, parse_trusted_keys
from governance.workspace import Workspace
from tests.governance.attacks import succeeds


def test_every_entry_type_fedgov_writes_is_dotted() -> None:
    written = [v for k, v in vars(et).items() if k.isupper() and isinstance(v, str) and "SCOPE" not in k
               and k != "LEGACY_NAMES"]
    assert written and all(re.fullmatch(r"[a-z]+\.[a-z_]+", name) for name in written), written


def test_a_query_by_the_dotted_name_finds_entries_written_with_the_old_name(workspace: Workspace) -> None:
    with Ledger.open(workspace) as ledger:
        ledger.append([EntryDraft("key_destroyed", {"written by": "fedgov 0.1"}, "ledger:system")], sign=True)
        ledger.append([EntryDraft("key.destroyed", {"written by": "fedgov 0.2"}, "ledger:system")], sign=True)
        assert [e.entry_type for e in ledger.query(entry_type="key.destroyed")] == ["key_destroyed", "key.destroyed"]
        assert [e.entry_type for e in ledger.query(entry_type="ledger.created")] == ["ledger.created"]
    out = succeeds("audit", "log", "--type", "key.destroyed", "--format", "csv", "--workspace", str(workspace.path))
    assert [line.split(",")[1] for line in out.splitlines()[1:]] == ["key_destroyed", "key.destroyed"]


def _key_whose_base64_holds_a_plus(name: str) -> tuple[Ed25519PrivateKey, VerifierKey]:
    while True:
        private = Ed25519PrivateKey.generate()
        key = VerifierKey(name, public_key_bytes(private))
        if "+" in key.to_text().split("+", 2)[2]:
            return private, key


def test_a_trust_file_line_splits_at_the_first_two_plus_signs_only() -> None:
    private, key = _key_whose_base64_holds_a_plus("fedgov.ledger/x")
    text = f"# pinned by the DPO\r\n\n   {key.to_text()}\t\r\n  # old key below was retired\n"
    assert parse_trusted_keys(text, "trust file") == [key]
    note = sign_checkpoint(key.name, 3, b"\x07" * 32, key.name, private)
    assert verify_checkpoint(note, parse_trusted_keys(text, "t")[0], key.name).size == 3


def test_extension_lines_are_covered_by_the_signature_and_ignored() -> None:
    private, key = _key_whose_base64_holds_a_plus("fedgov.ledger/x")
    root = base64.b64encode(bytes(32)).decode()
    body = f"{key.name}\n5\n{root}\nextension: witnessed\n"
    signature = base64.b64encode(key_id(key.name, key.public_key) + private.sign(body.encode())).decode()
    witness = base64.b64encode(bytes(68)).decode()
    note = f"{body}\n{SIG_PREFIX}witness.example/w1 {witness}\n{SIG_PREFIX}{key.name} {signature}\n"
    assert verify_checkpoint(note, key, key.name).size == 5  # the unknown witness's line is ignored
    with pytest.raises(CheckpointError, match="is invalid"):
        verify_checkpoint(note.replace("extension: witnessed", "extension: forged!!"), key, key.name)
