"""docs/ledger-format.md is enough: a verifier written from it alone agrees with fedgov.

`stranger_verifier.py` was written by someone who read only the spec (stdlib and
`cryptography`). Each case below starts from one good ledger, breaks it one way (or not),
and both verifiers must reach the same verdict; on success, the same entries, checkpoints,
root and signed size. One case per way to break it, named for it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from governance.ledger import EntryDraft, Ledger, create_workspace
from governance.verify.bundle import jcs_line
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE, run_fedgov
from tests.governance.attacks import recompute_cache, rewrite_entry, sql
from tests.governance.auditor_ledger import alice_reads, build_auditor_ledger
from tests.governance.bundle_tamper_vectors import (BUNDLE_TAMPER_CASES, BundleTamperCase, attacked_bundle,
                                                    read_members, write_members)
from tests.governance.governed_ledger import build_governed_run
from tests.governance.tamper_vectors import TamperCase, attacked_copy, build_good_ledger, tamper_cases

STRANGER = Path(__file__).with_name("stranger_verifier.py")


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """41 signed entries of every kind fedgov writes, a shred and a rotation among them, then 2 unsigned."""
    ws = create_workspace(tmp_path_factory.mktemp("genuine") / ".fedgov", PASSPHRASE)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        for r in range(3):
            ledger.append([EntryDraft("round.reply", {"i": i, "loss": 0.25}, f"node:n{i}", run_id="r1", round=r,
                                      node_id=f"n{i}") for i in range(12)], sign=True)
        ledger.shred("node:n3", actor="dpo", reason="art17")
        ledger.rotate_kek(actor="ops")
        ledger.append([EntryDraft("round.evaluated", {"acc": 0.9}, "run:r1", run_id="r1", round=3)] * 2)
    return ws


def _fedgov(args: list[str]) -> tuple[bool, dict | None]:
    result = run_fedgov(*args, "--format", "json")
    report = json.loads(result.stdout) if result.stdout.strip() else None
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode == 0, report


def _stranger(args: list[str]) -> tuple[bool, dict | None]:
    result = subprocess.run([sys.executable, str(STRANGER), *args], capture_output=True, text=True, timeout=60)
    line = result.stdout.strip()
    assert "\n" not in line and "Traceback" not in result.stderr, result.stdout + result.stderr
    if result.returncode != 0:
        assert line.startswith("FAIL "), line
        return False, None
    fields = dict(re.findall(r"(\w+)=(\S+)", line))
    return True, {k: (v if k == "root" else int(v)) for k, v in fields.items()}


def _agree(fedgov_args: list[str], stranger_args: list[str]) -> bool:
    ok, report = _fedgov(fedgov_args)
    s_ok, s_report = _stranger(stranger_args)
    assert ok == s_ok, f"fedgov {'accepts' if ok else 'rejects'}, the stranger {'accepts' if s_ok else 'rejects'}"
    if ok:
        assert s_report == {"entries": report["entries"], "checkpoints": report["checkpoints"],
                            "root": report["root"], "signed_size": report["signed_size"]}
    return ok


def _db(tmp_path: Path, genuine: Workspace) -> Workspace:
    ws = Workspace(tmp_path / "copy")
    shutil.copytree(genuine.path, ws.path)
    return ws


def _note_of(ws: Workspace, cp_id: int) -> str:
    import sqlite3

    db = sqlite3.connect(ws.sqlite_path)
    try:
        return db.execute("SELECT note FROM fedgov_checkpoints WHERE id = ?", (cp_id,)).fetchone()[0]
    finally:
        db.close()


# Each case: (name, should fedgov accept?, attack on a copy of the genuine workspace).
DB_CASES: list[tuple[str, bool, Callable[[Workspace], None]]] = [
    ("genuine", True, lambda ws: None),
    ("ciphertext-bit-flipped", False,
     lambda ws: sql(ws, "UPDATE fedgov_entries SET ciphertext = zeroblob(40) WHERE seq = 5")),
    ("index-field-edited", False, lambda ws: sql(ws, "UPDATE fedgov_entries SET node_id = 'x' WHERE seq = 5")),
    ("entry-rewritten-leaf-and-cache-recomputed", False, lambda ws: rewrite_entry(ws, 5, node_id="x")),
    ("entry-deleted", False, lambda ws: sql(ws, "DELETE FROM fedgov_entries WHERE seq = 8")),
    ("tail-cut-with-its-checkpoints", False,
     lambda ws: sql(ws, "DELETE FROM fedgov_entries WHERE seq >= 13", "DELETE FROM fedgov_checkpoints WHERE tree_size > 13",
                    "DELETE FROM fedgov_tree_nodes WHERE (idx + 1) * (1 << level) > 13")),
    ("every-checkpoint-deleted", False, lambda ws: sql(ws, "DELETE FROM fedgov_checkpoints")),
    ("checkpoint-signature-flipped", False,
     lambda ws: sql(ws, "UPDATE fedgov_checkpoints SET note = ? WHERE id = 2",
                    params=(_note_of(ws, 2).replace("\n— ", "\n— x"),))),
    ("checkpoint-row-size-edited", False, lambda ws: sql(ws, "UPDATE fedgov_checkpoints SET tree_size = 12 WHERE id = 2")),
    ("first-proof-not-empty", False,
     lambda ws: sql(ws, "UPDATE fedgov_checkpoints SET consistency_proof = (SELECT consistency_proof FROM "
                        "fedgov_checkpoints WHERE id = 3) WHERE id = 1")),
    ("proof-other-spacing", False,
     lambda ws: sql(ws, "UPDATE fedgov_checkpoints SET consistency_proof = replace(consistency_proof, '\", \"', "
                        "'\",\"') WHERE id = 3")),
    ("ledger-id-edited", False, lambda ws: sql(ws, "UPDATE fedgov_meta SET value = 'x' WHERE key = 'ledger_id'")),
    ("public-key-in-meta-edited", True, lambda ws: sql(ws, "UPDATE fedgov_meta SET value = 'AAAA' WHERE key = 'public_key'")),
    ("cache-node-altered", False, lambda ws: sql(ws, "UPDATE fedgov_tree_nodes SET hash = zeroblob(32) WHERE level = 4")),
    ("cache-node-missing", False, lambda ws: sql(ws, "DELETE FROM fedgov_tree_nodes WHERE level = 5")),
    ("cache-node-extra", False,
     lambda ws: sql(ws, "INSERT INTO fedgov_tree_nodes (level, idx, hash) VALUES (4, 99, zeroblob(32))")),
    ("cache-recomputed-by-hand", True, lambda ws: recompute_cache(ws)),
    ("data-keys-edited", True, lambda ws: sql(ws, "UPDATE fedgov_data_keys SET wrapped_key = NULL")),
]


@pytest.mark.parametrize("name, accepted, attack", DB_CASES, ids=[c[0] for c in DB_CASES])
def test_the_stranger_agrees_on_a_database(genuine: Workspace, tmp_path: Path, name: str, accepted: bool,
                                          attack: Callable[[Workspace], None]) -> None:
    ws = _db(tmp_path, genuine)
    attack(ws)
    known = ["--known-checkpoint", str(ws.head_path)]
    assert _agree(["audit", "verify", "--workspace", str(ws.path)],
                  ["--db", str(ws.sqlite_path), "--trusted-keys", str(ws.trust_path), *known]) == accepted


TAMPER_CASES = tamper_cases()


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return build_good_ledger(tmp_path_factory.mktemp("good") / ".fedgov")


@pytest.mark.parametrize("case", TAMPER_CASES, ids=[c.name for c in TAMPER_CASES])
def test_the_stranger_rejects_every_tamper_vector(good: Workspace, tmp_path: Path, case: TamperCase) -> None:
    """fedgov's own verdict on each case (exit 1, its line) is asserted in tests/governance/test_tamper.py."""
    ws = attacked_copy(good, case, tmp_path / "ws")
    accepted, _ = _stranger(["--db", str(ws.sqlite_path), "--trusted-keys", str(ws.trust_path),
                             "--known-checkpoint", str(ws.head_path)])
    assert accepted == case.stranger_accepts


def _edit(bundle: Path, name: str, edit: Callable[[bytes], bytes], fix: bool = True) -> None:
    members = read_members(bundle)
    members[name] = edit(members[name])
    write_members(bundle, members, fix_manifest=fix)


def _edit_line(bundle: Path, name: str, number: int, edit: Callable[[bytes], bytes], fix: bool = True) -> None:
    def on_line(data: bytes) -> bytes:
        lines = data.split(b"\n")
        lines[number - 1] = edit(lines[number - 1])
        return b"\n".join(lines)
    _edit(bundle, name, on_line, fix)


def _json_edit(**members: object) -> Callable[[bytes], bytes]:
    return lambda data: jcs_line({**json.loads(data), **members})


BUNDLE_CASES: list[tuple[str, bool, Callable[[Path], None]]] = [
    ("genuine", True, lambda b: None),
    ("duplicate-member", False,
     lambda b: _edit_line(b, "entries.jsonl", 4, lambda l: l.replace(b'"node_id":', b'"node_id":"x","node_id":', 1))),
    ("escaped-ascii", False,
     lambda b: _edit_line(b, "entries.jsonl", 3, lambda l: l.replace(b'"run_id":"r1"', b'"run_id":"\\u00721"'))),
    ("checkpoint-line-spaced", False,
     lambda b: _edit_line(b, "checkpoints.jsonl", 2, lambda l: json.dumps(json.loads(l)).encode())),
    ("meta-indented", False,
     lambda b: _edit(b, "meta.json", lambda d: (json.dumps(json.loads(d), indent=1) + "\n").encode())),
    ("checkpoints-emptied", False, lambda b: _edit(b, "checkpoints.jsonl", lambda d: b"")),
    ("created-edited-manifest-kept", False,
     lambda b: _edit_line(b, "checkpoints.jsonl", 1, lambda l: l.replace(b'"created":"2', b'"created":"1'), fix=False)),
    ("created-edited-manifest-fixed", True,
     lambda b: _edit_line(b, "checkpoints.jsonl", 1, lambda l: l.replace(b'"created":"2', b'"created":"1'))),
    ("ledger-id-edited", False, lambda b: _edit(b, "meta.json", _json_edit(ledger_id="x"))),
    ("version-2", False, lambda b: _edit(b, "manifest.json", _json_edit(version=2), fix=False)),
    ("entry-line-crlf", False, lambda b: _edit_line(b, "entries.jsonl", 2, lambda l: l + b"\r")),
    ("proof-line-spaced", False,
     lambda b: _edit_line(b, "proofs.jsonl", 2, lambda l: json.dumps(json.loads(l)).encode())),
    ("consent-edited-manifest-fixed", True, lambda b: _edit(b, "consent.json", _json_edit(erased=[]))),
    ("extra-member-listed", True,
     lambda b: write_members(b, {**read_members(b), "identities/auditor.pub": b"{}\n"})),
]


@pytest.fixture(scope="module")
def genuine_bundle(genuine: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = tmp_path_factory.mktemp("bundle") / "genuine.zip"
    assert run_fedgov("audit", "export", "--workspace", str(genuine.path), "--out", str(bundle)).returncode == 0
    return bundle


@pytest.mark.parametrize("name, accepted, attack", BUNDLE_CASES, ids=[c[0] for c in BUNDLE_CASES])
def test_the_stranger_agrees_on_a_bundle(genuine: Workspace, genuine_bundle: Path, tmp_path: Path, name: str,
                                        accepted: bool, attack: Callable[[Path], None]) -> None:
    bundle = Path(shutil.copy(genuine_bundle, tmp_path / "bundle.zip"))
    attack(bundle)
    trust = ["--trusted-key", str(genuine.trust_path)]
    assert _agree(["audit", "verify", "--bundle", str(bundle), *trust],
                  ["--bundle", str(bundle), "--trusted-keys", str(genuine.trust_path)]) == accepted


@pytest.fixture(scope="module")
def governed_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Path]:
    """The good bundle of tests/governance/bundle_tamper_vectors.py."""
    ws = create_workspace(tmp_path_factory.mktemp("governed") / ".fedgov", PASSPHRASE)
    build_governed_run(ws, PASSPHRASE, rounds=3, nodes=4)
    bundle = ws.path.parent / "good.zip"
    assert run_fedgov("audit", "export", "--workspace", str(ws.path), "--out", str(bundle)).returncode == 0
    return ws, bundle


@pytest.mark.parametrize("case", BUNDLE_TAMPER_CASES, ids=[c.name for c in BUNDLE_TAMPER_CASES])
def test_the_stranger_rejects_every_bundle_tamper_vector(governed_bundle: tuple[Workspace, Path], tmp_path: Path,
                                                        case: BundleTamperCase) -> None:
    """fedgov's own lines for each case are asserted in tests/governance/test_evidence_bundle.py."""
    ws, good = governed_bundle
    accepted, _ = _stranger(["--bundle", str(attacked_bundle(good, case, tmp_path / "b.zip")),
                             "--trusted-keys", str(ws.trust_path)])
    assert not accepted


def test_the_stranger_agrees_on_a_filtered_bundle(governed_bundle: tuple[Workspace, Path], tmp_path: Path) -> None:
    ws, _ = governed_bundle
    bundle = tmp_path / "run.zip"
    assert run_fedgov("audit", "export", "--run", "run-1", "--workspace", str(ws.path), "--out", str(bundle)).returncode == 0
    assert _agree(["audit", "verify", "--bundle", str(bundle), "--trusted-key", str(ws.trust_path)],
                  ["--bundle", str(bundle), "--trusted-keys", str(ws.trust_path)])


# -- §8.2: an identity's receipts ------------------------------------------------------------------------------------


def _delete_the_read(root: Path, seq: int) -> None:
    ws = Workspace(root / "ws" / ".fedgov")
    sql(ws, f"DELETE FROM fedgov_entries WHERE seq >= {seq}", f"DELETE FROM fedgov_batch_auth WHERE first_seq >= {seq}")
    recompute_cache(ws)
    assert run_fedgov("audit", "checkpoint", "--workspace", str(ws.path)).returncode == 0


def _replace_the_read(root: Path, seq: int) -> None:
    _delete_the_read(root, seq)
    with Ledger.open(Workspace(root / "ws" / ".fedgov"), PASSPHRASE) as operator:
        operator.append([EntryDraft("run.finished", {"status": "completed"}, "run:r1", run_id="r1")], sign=True)


def _edit_receipt(root: Path, **members: object) -> None:
    receipts = root / "alice" / "alice.receipts"
    receipt = {**json.loads(receipts.read_text()), **members}
    receipts.write_text(json.dumps(receipt, sort_keys=True, separators=(",", ":")) + "\n")


def _alter_the_receipt(root: Path, seq: int) -> None:
    _edit_receipt(root, count=2)


def _another_ledgers_receipt(root: Path, seq: int) -> None:
    _edit_receipt(root, ledger_id="another-ledger")


def _duplicate_member(root: Path, seq: int) -> None:
    receipts = root / "alice" / "alice.receipts"
    receipts.write_text(receipts.read_text().rstrip("\n")[:-1] + f',"first":{seq}}}\n')


def _pad_bits_set(root: Path, seq: int) -> None:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    receipts = root / "alice" / "alice.receipts"
    receipts.write_text(re.sub(r'(.)=="', lambda m: alphabet[alphabet.index(m.group(1)) ^ 1] + '=="',
                               receipts.read_text()))


def _foreign_line_with_a_bad_signature(root: Path, seq: int) -> None:
    receipts = root / "alice" / "alice.receipts"
    foreign = {**json.loads(receipts.read_text()), "ledger_id": "another-ledger", "signature": "AAAA"}
    receipts.write_text(receipts.read_text() + json.dumps(foreign, sort_keys=True, separators=(",", ":")) + "\n")


def _invented_writer(root: Path, seq: int) -> None:
    _edit_receipt(root, writer="de" * 16)


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("audited")
    build_auditor_ledger(root)
    alice_reads(root)  # a receipt of the unsigned tail
    return root


@pytest.mark.parametrize("name, attack, accepted", [
    ("genuine", None, True),
    ("read deleted, then a checkpoint signed over the loss", _delete_the_read, False),
    ("read deleted and replaced by a signed entry", _replace_the_read, False),
    ("receipt altered", _alter_the_receipt, False),
    ("receipts of another ledger only", _another_ledgers_receipt, False),
    ("a member twice", _duplicate_member, False),
    ("signature with a pad bit set", _pad_bits_set, False),
    ("another ledger's line with a malformed signature", _foreign_line_with_a_bad_signature, False),
    ("a writer never registered", _invented_writer, False),
])
def test_the_stranger_agrees_on_an_identitys_receipts(audited: Path, tmp_path: Path, name: str, attack, accepted: bool):
    root = tmp_path / "copy"
    shutil.copytree(audited, root)
    ws = Workspace(root / "ws" / ".fedgov")
    receipts = str(root / "alice" / "alice.receipts")
    if attack is not None:
        attack(root, json.loads(Path(receipts).read_text())["first"])
    ok, report = _fedgov(["audit", "verify", "--workspace", str(ws.path), "--receipts", receipts])
    s_ok, s_report = _stranger(["--db", str(ws.sqlite_path), "--trusted-keys", str(ws.trust_path),
                                "--receipts", receipts])
    assert (ok, s_ok) == (accepted, accepted), name
    if accepted:
        assert s_report["receipts"] == report["receipts"]["matched"] == 1
