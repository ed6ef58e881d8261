"""A bundle has one byte form: the reader re-encodes every line and file and refuses any other.

Item 5: a lenient reader would take a duplicate member's last copy while another tool took
the first, so two verifiers could read two different ledgers out of one file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from governance.ledger import EntryDraft, Ledger
from governance.verify.bundle import DATA_FILES, jcs_line
from governance.workspace import Workspace
from tests.governance.attacks import fails_with, succeeds


@pytest.fixture
def bundle(workspace: Workspace, tmp_path: Path) -> Path:
    with Ledger.open(workspace) as ledger:
        ledger.append([EntryDraft("round.reply", {"i": i}, "node:n1", run_id="r1", round=1, node_id="n1")
                       for i in range(6)], sign=True)
    out = tmp_path / "bundle"
    succeeds("audit", "export", "--workspace", str(workspace.path), "--out", str(out))
    return out


def _lines(bundle: Path, name: str) -> list[bytes]:
    return (bundle / name).read_bytes().split(b"\n")[:-1]


def _write_lines(bundle: Path, name: str, lines: list[bytes]) -> None:
    (bundle / name).write_bytes(b"".join(line + b"\n" for line in lines))
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    manifest["sha256"] = {f: hashlib.sha256((bundle / f).read_bytes()).hexdigest() for f in DATA_FILES}
    (bundle / "manifest.json").write_bytes(jcs_line(manifest))


def _verify(bundle: Path) -> list[str]:
    return ["audit", "verify", "--bundle", str(bundle)]


def test_a_genuine_bundle_verifies(bundle: Path) -> None:
    assert succeeds(*_verify(bundle)).startswith("checked 7 entries, 2 checkpoints")


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
    meta = json.loads((bundle / "meta.json").read_bytes())
    _write_lines(bundle, "meta.json", [json.dumps(meta, indent=1).encode()])
    fails_with(_verify(bundle), "error: meta.json: not in its canonical byte form (RFC 8785 JSON then LF, "
               "docs/ledger-format.md §10)")


def test_a_manifest_not_in_canonical_form_is_refused(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    (bundle / "manifest.json").write_text(json.dumps(manifest) + "\n", encoding="utf-8")
    fails_with(_verify(bundle), "error: manifest.json: not in its canonical byte form (RFC 8785 JSON then LF, "
               "docs/ledger-format.md §10)")


def test_a_version_1_bundle_is_refused_with_how_to_fix(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    (bundle / "manifest.json").write_bytes(jcs_line({**manifest, "version": 1}))
    fails_with(_verify(bundle), "error: manifest.json: bundle version 1 is not read by this fedgov (it reads version "
               "2); export the ledger again with `fedgov audit export`")


def test_a_deeply_nested_line_is_a_named_rejection(bundle: Path) -> None:
    lines = _lines(bundle, "checkpoints.jsonl")
    lines.append(b"[" * 100000 + b"]" * 100000)
    _write_lines(bundle, "checkpoints.jsonl", lines)
    fails_with(_verify(bundle), "error: checkpoints.jsonl line 3: not valid JSON (RecursionError)")
