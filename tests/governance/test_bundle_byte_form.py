"""A bundle has one byte form: the reader re-encodes every line and file and refuses any other.

Item 5: a lenient reader would take a duplicate member's last copy while another tool took
the first, so two verifiers could read two different ledgers out of one file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from governance.ledger import EntryDraft, Ledger, create_workspace
from governance.verify.bundle import jcs_line
from tests.fedgov_command import PASSPHRASE
from tests.governance.attacks import fails_with, succeeds
from tests.governance.bundle_tamper_vectors import read_members, write_members


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = create_workspace(tmp_path_factory.mktemp("ws") / ".fedgov", PASSPHRASE)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        ledger.append([EntryDraft("round.reply", {"i": i}, "node:n1", run_id="r1", round=1, node_id="n1")
                       for i in range(6)], sign=True)
    out = ws.path.parent / "bundle.zip"
    succeeds("audit", "export", "--workspace", str(ws.path), "--out", str(out))
    return out


@pytest.fixture
def bundle(exported: Path, tmp_path: Path) -> Path:
    """A copy of one bundle of 7 entries and 2 checkpoints, for this test to break."""
    return Path(shutil.copy(exported, tmp_path / "bundle.zip"))


def _lines(bundle: Path, name: str) -> list[bytes]:
    return read_members(bundle)[name].split(b"\n")[:-1]


def _write_lines(bundle: Path, name: str, lines: list[bytes]) -> None:
    """Replace one file of the zip; the manifest's digests are recomputed, as anyone can."""
    write_members(bundle, {**read_members(bundle), name: b"".join(line + b"\n" for line in lines)})


def _write_manifest(bundle: Path, data: bytes) -> None:
    write_members(bundle, {**read_members(bundle), "manifest.json": data}, fix_manifest=False)


def _verify(bundle: Path) -> list[str]:
    return ["audit", "verify", "--bundle", str(bundle)]


def test_a_genuine_bundle_verifies(bundle: Path) -> None:
    assert succeeds(*_verify(bundle)).startswith("verified: 7 entries, 2 checkpoints, tree size 7, root ")


def test_an_entry_line_with_a_duplicate_member_is_refused(bundle: Path) -> None:
    """The first copy of node_id holds a forged value; a last-wins parser sees the genuine one."""
    lines = _lines(bundle, "entries.jsonl")
    lines[3] = lines[3].replace(b'"node_id":"n1"', b'"node_id":"mallory","node_id":"n1"')
    _write_lines(bundle, "entries.jsonl", lines)
    fails_with(_verify(bundle), "error: entries.jsonl line 4 (entry seq 3): not in the byte form of "
               "docs/ledger-format.md §10 (re-encoded, it differs: duplicate or reordered members, other whitespace, "
               "escapes or base64)")


def test_an_entry_line_with_other_escapes_is_refused(bundle: Path) -> None:
    lines = _lines(bundle, "entries.jsonl")
    lines[2] = lines[2].replace(b'"node_id":"n1"', b'"node_id":"\\u006e1"')
    _write_lines(bundle, "entries.jsonl", lines)
    fails_with(_verify(bundle), "error: entries.jsonl line 3 (entry seq 2): not in the byte form of ...")


def test_an_entry_line_with_an_extra_member_is_refused(bundle: Path) -> None:
    lines = _lines(bundle, "entries.jsonl")
    lines[1] = lines[1][:-1] + b',"note":"x"}'
    _write_lines(bundle, "entries.jsonl", lines)
    fails_with(_verify(bundle), "error: entries.jsonl line 2: members must be exactly ciphertext, config_hash, "
               "entry_type, key_id, model_hash, node_id, round, run_id, seq, timestamp, leaf_hash")


def test_a_checkpoint_line_not_in_canonical_form_is_refused(bundle: Path) -> None:
    lines = _lines(bundle, "checkpoints.jsonl")
    lines[1] = json.dumps(json.loads(lines[1])).encode()  # same values, Python's spacing and \u2014 escapes
    _write_lines(bundle, "checkpoints.jsonl", lines)
    fails_with(_verify(bundle), "error: checkpoints.jsonl line 2: not in its canonical byte form (RFC 8785 JSON then "
               "LF, docs/ledger-format.md §10)")


def test_meta_not_in_canonical_form_is_refused(bundle: Path) -> None:
    meta = json.loads(read_members(bundle)["meta.json"])
    _write_lines(bundle, "meta.json", [json.dumps(meta, indent=1).encode()])
    fails_with(_verify(bundle), "error: meta.json: not in its canonical byte form (RFC 8785 JSON then LF, "
               "docs/ledger-format.md §10)")


def test_a_manifest_not_in_canonical_form_is_refused(bundle: Path) -> None:
    manifest = json.loads(read_members(bundle)["manifest.json"])
    _write_manifest(bundle, (json.dumps(manifest) + "\n").encode())
    fails_with(_verify(bundle), "error: manifest.json: not in its canonical byte form (RFC 8785 JSON then LF, "
               "docs/ledger-format.md §10)")


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_bundle_version_is_refused_with_how_to_fix(bundle: Path, version: int) -> None:
    manifest = json.loads(read_members(bundle)["manifest.json"])
    _write_manifest(bundle, jcs_line({**manifest, "version": version}))
    fails_with(_verify(bundle), f"error: manifest.json: bundle version {version} is not read by this fedgov (it reads "
               "version 3); export the ledger again with `fedgov audit export`")


def test_a_proof_line_with_other_base64_is_refused(bundle: Path) -> None:
    lines = _lines(bundle, "proofs.jsonl")
    row = json.loads(lines[2])
    row["hashes"][0] = row["hashes"][0][:-2] + "x="  # 32 bytes no more: not the padded base64 of a hash
    lines[2] = jcs_line(row).rstrip(b"\n")
    _write_lines(bundle, "proofs.jsonl", lines)
    fails_with(_verify(bundle), "error: proofs.jsonl line 3: ...")


def test_a_zip_holding_a_name_twice_is_refused(bundle: Path) -> None:
    import zipfile

    with zipfile.ZipFile(bundle, "a") as archive, pytest.warns(UserWarning, match="Duplicate name"):
        archive.writestr("entries.jsonl", b"")
    fails_with(_verify(bundle), "error: the zip holds entries.jsonl twice")


def test_a_file_that_is_not_a_zip_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "b.zip").write_text("hello")
    fails_with(_verify(tmp_path / "b.zip"), f"error: {tmp_path / 'b.zip'} is not a fedgov evidence bundle (not a zip "
               "file)", code=2)


def test_a_deeply_nested_line_is_a_named_rejection(bundle: Path) -> None:
    lines = _lines(bundle, "checkpoints.jsonl")
    lines.append(b"[" * 100000 + b"]" * 100000)
    _write_lines(bundle, "checkpoints.jsonl", lines)
    fails_with(_verify(bundle), "error: checkpoints.jsonl line 3: not valid JSON (RecursionError)")


@pytest.mark.parametrize("hashes", [[], [bytes(32)], [bytes(range(32)), b"\xff" * 32]])
def test_a_proof_line_is_the_jcs_of_its_object(hashes: list[bytes]) -> None:
    import base64

    from governance.verify.bundle import proof_line

    assert proof_line(5, 2**40, hashes) == jcs_line({"hashes": [base64.b64encode(h).decode() for h in hashes],
                                                     "seq": 5, "tree_size": 2**40})
