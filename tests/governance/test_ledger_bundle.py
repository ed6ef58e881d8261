"""Offline evidence bundles: export, verify with no database, and name any altered byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from governance.errors import UsageError, VerificationError
from governance.ledger import EntryDraft, Ledger
from governance.ledger.bundle import export_bundle
from governance.ledger.verify import load_trusted_keys, verify_ledger
from governance.verify.bundle import jcs_line, verify_bundle
from governance.workspace import Workspace
from tests.fedgov_command import run_fedgov


@pytest.fixture
def bundle(workspace: Workspace, tmp_path: Path) -> Path:
    """A bundle of 13 entries and 3 checkpoints (at sizes 1, 7 and 12)."""
    with Ledger.open(workspace) as ledger:
        for batch in range(2):
            ledger.append([EntryDraft("update_received", {"i": i, "loss": 0.5}, "node:n1", run_id="r1", round=batch,
                                      node_id="n1") for i in range(6 if batch == 0 else 5)])
            ledger.checkpoint()
        ledger.append([EntryDraft("update_received", {"tail": True}, "node:n2", node_id="n2")])
    out = tmp_path / "bundle"
    assert export_bundle(workspace, out) == (13, 3)
    return out


def _flip(path: Path, needle: bytes, offset: int = 0) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(needle) + offset
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_exported_bundle_verifies_to_the_same_root_as_the_database(workspace: Workspace, bundle: Path) -> None:
    from_db = verify_ledger(workspace)
    from_files = verify_bundle(bundle, load_trusted_keys(workspace.trust_path))
    same = ("entries", "checkpoints", "root_hex", "signed_size", "unsigned_tail")
    assert [getattr(from_files, f) for f in same] == [getattr(from_db, f) for f in same]
    assert from_files.unsigned_tail == 1 and from_files.cache_nodes is None


def test_bundle_verifies_from_the_cli_with_the_workspace_gone(workspace: Workspace, bundle: Path) -> None:
    key = workspace.trust_path.read_text(encoding="utf-8").strip()
    shutil.rmtree(workspace.path)
    result = run_fedgov("audit", "verify", "--bundle", str(bundle), "--trusted-key", key)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("checked 13 entries, 3 checkpoints")


def test_export_refuses_a_non_empty_directory(workspace: Workspace, bundle: Path) -> None:
    with pytest.raises(UsageError, match="not an empty directory"):
        export_bundle(workspace, bundle)


@pytest.mark.parametrize("position", range(16, 48))
def test_flipped_ciphertext_byte_in_the_bundle_names_the_entry(bundle: Path, position: int) -> None:
    # Wherever the bit lands, the failure names the entry: a changed ciphertext fails its
    # leaf hash, and a character that is no longer base64 fails decoding.
    lines = (bundle / "entries.jsonl").read_bytes().splitlines(keepends=True)
    line = bytearray(lines[5])
    line[position] ^= 0x01  # inside the base64 ciphertext of seq 5
    lines[5] = bytes(line)
    (bundle / "entries.jsonl").write_bytes(b"".join(lines))
    with pytest.raises(VerificationError, match="entry seq 5"):
        verify_bundle(bundle)


def test_flipped_index_field_in_the_unsigned_tail_names_the_entry(bundle: Path) -> None:
    _flip(bundle / "entries.jsonl", b'"node_id":"n2"', offset=len('"node_id":"n'))
    with pytest.raises(VerificationError, match="entry seq 12"):
        verify_bundle(bundle)


def test_flipped_byte_in_a_checkpoint_note_names_the_checkpoint(bundle: Path) -> None:
    lines = (bundle / "checkpoints.jsonl").read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[1])
    row["note"] = row["note"].replace("\n7\n", "\n6\n")
    lines[1] = jcs_line(row).decode("utf-8").rstrip("\n")
    (bundle / "checkpoints.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(VerificationError, match="checkpoint #2"):
        verify_bundle(bundle)


def test_flipped_byte_in_an_unsigned_checkpoint_field_names_the_file(bundle: Path) -> None:
    _flip(bundle / "checkpoints.jsonl", b'"created":"', offset=len('"created":"') + 3)
    with pytest.raises(VerificationError, match="checkpoints.jsonl: SHA-256 .* does not match the manifest"):
        verify_bundle(bundle)


def test_flipped_byte_in_the_shipped_meta_names_the_file(bundle: Path) -> None:
    _flip(bundle / "meta.json", b'"created"', offset=2)
    with pytest.raises(VerificationError, match="meta.json"):
        verify_bundle(bundle)


def test_flipped_byte_in_the_shipped_trusted_key_is_detected(bundle: Path) -> None:
    _flip(bundle / "trusted_keys", b"+", offset=3)
    with pytest.raises(VerificationError, match="trusted_keys"):
        verify_bundle(bundle)


def test_every_single_byte_flip_in_the_entries_file_fails_verification(bundle: Path) -> None:
    original = (bundle / "entries.jsonl").read_bytes()
    for at in range(0, len(original), 97):
        altered = bytearray(original)
        altered[at] ^= 0x01
        (bundle / "entries.jsonl").write_bytes(bytes(altered))
        with pytest.raises(VerificationError, match="entry seq|entries.jsonl"):
            verify_bundle(bundle)


def test_a_directory_without_a_manifest_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a fedgov evidence bundle"):
        verify_bundle(tmp_path)


def test_cli_names_the_altered_entry_with_exit_code_1(bundle: Path) -> None:
    _flip(bundle / "entries.jsonl", b'"node_id":"n2"', offset=len('"node_id":"n'))
    result = run_fedgov("audit", "verify", "--bundle", str(bundle))
    assert result.returncode == 1
    assert "entry seq 12" in result.stderr and "Traceback" not in result.stderr
