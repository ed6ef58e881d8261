"""Evidence bundles (issue 11, items 5 and 6): one zip out of a governed ledger, verified by a verifier that travels.

The ledger is a governed run written with the governance API (tests/governance/governed_ledger.py);
the verifier runs in a fresh virtual environment that holds `cryptography` and a copy of
governance/verify and nothing else, started with `python -I`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from governance.ledger import EntryDraft, Ledger, create_workspace
from governance.ledger.verify import verify_ledger
from governance.verify.bundle_check import verify_bundle
from governance.verify.inputs import load_trusted_keys
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE, run_fedgov
from tests.governance.attacks import fails_with, succeeds
from tests.governance.bundle_tamper_vectors import (BUNDLE_TAMPER_CASES, BundleTamperCase, attacked_bundle, lines,
                                                    matches, read_members, set_lines, write_members)
from tests.governance.governed_ledger import build_governed_run

VERIFY = Path(__file__).resolve().parents[2] / "governance" / "verify"


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """One governed run: 4 nodes, 3 rounds, node-003 withdrawn before round 3 (32 entries, 8 checkpoints)."""
    ws = create_workspace(tmp_path_factory.mktemp("governed") / ".fedgov", PASSPHRASE)
    build_governed_run(ws, PASSPHRASE, rounds=3, nodes=4)
    return ws


@pytest.fixture(scope="module")
def good(governed: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "complete.zip"
    said = succeeds("audit", "export", "--workspace", str(governed.path), "--out", str(out))
    assert said == f"exported 32 entries (the whole ledger), 8 checkpoints, tree size 32 to {out}\n"
    return out


@pytest.fixture(scope="module")
def by_run(governed: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "run-1.zip"
    succeeds("audit", "export", "--run", "run-1", "--workspace", str(governed.path), "--out", str(out))
    return out


@pytest.fixture(scope="module")
def travelling(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh venv whose site-packages hold cryptography (with cffi) and governance/verify only."""
    import cryptography

    home = tmp_path_factory.mktemp("auditor") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True, timeout=120)
    site = next(home.glob("lib/python3*/site-packages"))
    installed = Path(cryptography.__file__).parents[1]
    for name in ("cryptography", "cffi", "pycparser", *(p.name for p in installed.glob("_cffi_backend*"))):
        (site / name).symlink_to(installed / name)
    shutil.copytree(VERIFY, site / "governance" / "verify", ignore=shutil.ignore_patterns("__pycache__"))
    return home / "bin" / "python"


def _travel(python: Path, bundle: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-I", "-m", "governance.verify", str(bundle), *args], capture_output=True,
                          text=True, timeout=60, cwd=bundle.parent)


def _root(ws: Workspace) -> str:
    return verify_ledger(ws).root_hex


def test_a_complete_bundle_verifies_offline_with_only_cryptography(governed: Workspace, good: Path,
                                                                   travelling: Path) -> None:
    done = _travel(travelling, good, "--trusted-key", str(governed.trust_path))
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"verified: 32 entries, 8 checkpoints, tree size 32, root {_root(governed)}\n"
    probe = subprocess.run([str(travelling), "-I", "-c", "import sqlalchemy"], capture_output=True, timeout=60)
    assert probe.returncode == 1  # nothing else is there to be used


def test_fedgov_audit_verify_prints_what_the_travelling_verifier_prints(governed: Workspace, good: Path,
                                                                       travelling: Path) -> None:
    key = governed.trust_path.read_text(encoding="utf-8").strip()
    assert succeeds("audit", "verify", "--bundle", str(good), "--trusted-key", key) == \
        _travel(travelling, good, "--trusted-key", key).stdout


@pytest.mark.parametrize("case", BUNDLE_TAMPER_CASES, ids=[c.name for c in BUNDLE_TAMPER_CASES])
def test_a_tampered_bundle_fails_with_every_line_of_its_case(governed: Workspace, good: Path, travelling: Path,
                                                            tmp_path: Path, case: BundleTamperCase) -> None:
    bundle = attacked_bundle(good, case, tmp_path / f"{case.name}.zip")
    done = _travel(travelling, bundle, "--trusted-key", str(governed.trust_path))
    assert done.returncode == 1 and done.stdout == "" and matches(case.want, done.stderr), done.stderr
    with pytest.raises(Exception) as caught:  # the same code in-process: the same lines
        verify_bundle(bundle, load_trusted_keys(governed.trust_path))
    assert matches(case.want, "".join(f"error: {line}\n" for line in caught.value.failures))


def test_the_cli_prints_every_failure_as_its_own_line(governed: Workspace, good: Path, tmp_path: Path) -> None:
    case = next(c for c in BUNDLE_TAMPER_CASES if c.name == "swapped-proof")
    bundle = attacked_bundle(good, case, tmp_path / "b.zip")
    done = run_fedgov("audit", "verify", "--bundle", str(bundle), "--trusted-key", str(governed.trust_path))
    assert done.returncode == 1 and matches(case.want, done.stderr), done.stderr


def test_the_vectors_cover_the_five_named_attacks() -> None:
    names = {c.name for c in BUNDLE_TAMPER_CASES}
    assert {"edited-entry", "dropped-entry", "swapped-proof", "forged-checkpoint", "edited-manifest"} <= names


def test_every_flipped_bit_in_the_entries_fails(governed: Workspace, good: Path, tmp_path: Path) -> None:
    members = read_members(good)
    original = members["entries.jsonl"]
    keys = load_trusted_keys(governed.trust_path)
    for at in range(0, len(original), 211):
        altered = bytearray(original)
        altered[at] ^= 0x01
        write_members(tmp_path / "b.zip", {**members, "entries.jsonl": bytes(altered)})
        with pytest.raises(Exception, match="entry seq|entries.jsonl"):
            verify_bundle(tmp_path / "b.zip", keys)


def test_the_same_ledger_exports_the_same_bytes(governed: Workspace, good: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.zip"
    succeeds("audit", "export", "--workspace", str(governed.path), "--out", str(again))
    assert again.read_bytes() == good.read_bytes()


def test_export_never_writes_over_a_file(governed: Workspace, good: Path) -> None:
    before = good.read_bytes()
    fails_with(["audit", "export", "--workspace", str(governed.path), "--out", str(good)],
               f"error: --out {good} exists: a bundle is never written over a file; choose a new name", code=2)
    assert good.read_bytes() == before


def test_an_unknown_run_is_an_error_not_an_empty_bundle(governed: Workspace, tmp_path: Path) -> None:
    fails_with(["audit", "export", "--run", "nope", "--workspace", str(governed.path), "--out", str(tmp_path / "b.zip")],
               "error: --run 'nope' names nothing this ledger has recorded (it knows: run-1)", code=2)
    assert list(tmp_path.iterdir()) == []


def test_a_filter_that_selects_nothing_is_an_error(governed: Workspace, tmp_path: Path) -> None:
    fails_with(["audit", "export", "--since", "2999-01-01", "--workspace", str(governed.path),
                "--out", str(tmp_path / "b.zip")],
               "error: nothing to export: no signed entry matches --since 2999-01-01T00:00:00.000000Z (the newest "
               "checkpoint covers 32 entries)", code=2)
    assert list(tmp_path.iterdir()) == []


def test_a_naive_time_is_refused(governed: Workspace, tmp_path: Path) -> None:
    fails_with(["audit", "export", "--until", "2026-01-31T12:00", "--workspace", str(governed.path),
                "--out", str(tmp_path / "b.zip")],
               "error: --until '2026-01-31T12:00': give a date (2026-01-31) or a time with its offset "
               "(2026-01-31T12:00:00Z)", code=2)


def test_a_run_bundle_holds_that_run_and_says_what_it_cannot_show(governed: Workspace, by_run: Path,
                                                                  travelling: Path) -> None:
    done = _travel(travelling, by_run, "--trusted-key", str(governed.trust_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"verified: 22 entries, 8 checkpoints, tree size 32, root {_root(governed)}",
        "selection: run run-1 (each entry is proved to be in the ledger; a filtered bundle cannot show that no entry "
        "of the selection was left out)"]
    rows = [json.loads(line) for line in lines(read_members(by_run), "entries.jsonl")]
    assert {r["run_id"] for r in rows} == {"run-1"} and len(rows) == 22


def test_a_filtered_bundle_cannot_show_an_entry_was_left_out(governed: Workspace, by_run: Path, tmp_path: Path) -> None:
    """The limit, stated: only a complete bundle proves that nothing is missing."""
    members = read_members(by_run)
    for name in ("entries.jsonl", "proofs.jsonl"):
        set_lines(members, name, lines(members, name)[:-1])
    write_members(tmp_path / "b.zip", members)
    assert verify_bundle(tmp_path / "b.zip", load_trusted_keys(governed.trust_path)).entries == 21


def test_an_entry_outside_the_selection_is_named(governed: Workspace, good: Path, by_run: Path,
                                                 tmp_path: Path) -> None:
    complete, members = read_members(good), read_members(by_run)
    for name in ("entries.jsonl", "proofs.jsonl"):  # seq 5, a consent grant, slipped in before seq 9
        set_lines(members, name, [lines(complete, name)[5], *lines(members, name)])
    write_members(tmp_path / "b.zip", members)
    with pytest.raises(Exception) as caught:
        verify_bundle(tmp_path / "b.zip", load_trusted_keys(governed.trust_path))
    assert caught.value.failures == ["entry seq 5 is outside the bundle's selection (run_id '', not 'run-1')"]


def test_consent_json_holds_the_records_in_force_and_the_withdrawal(good: Path) -> None:
    consent = json.loads(read_members(good)["consent.json"])
    assert consent["format"] == "fedgov-bundle-consent" and consent["erased"] == []
    assert [(r["principal"], r["granted_seq"], r["withdrawn_seq"]) for r in consent["records"]] == [
        ("node-000", 5, None), ("node-001", 6, None), ("node-002", 7, None), ("node-003", 8, 24)]
    assert consent["records"][3]["withdrawal_reason"] == "no longer wishes to take part"


def test_a_window_before_the_withdrawal_shows_the_consent_then_in_force(governed: Workspace, good: Path,
                                                                        tmp_path: Path) -> None:
    until = json.loads(lines(read_members(good), "entries.jsonl")[17])["timestamp"]  # round 2 begins
    out = tmp_path / "round-1.zip"
    succeeds("audit", "export", "--until", until, "--workspace", str(governed.path), "--out", str(out))
    members = read_members(out)
    assert len(lines(members, "entries.jsonl")) == 17
    assert [r["withdrawn_seq"] for r in json.loads(members["consent.json"])["records"]] == [None] * 4
    assert json.loads(members["manifest.json"])["selection"] == {"run": None, "since": None, "until": until}


def test_lineage_is_prov_json_of_every_model_version(good: Path) -> None:
    prov = json.loads(read_members(good)["lineage.prov.json"])
    models = [e for e in prov["entity"].values() if e["prov:type"]["$"] == "fedgov:ModelVersion"]
    assert len(models) == 4 and len(prov["wasGeneratedBy"]) == 4
    assert {a["fedgov:operator"] for a in prov["agent"].values() if "fedgov:operator" in a} == {"alice"}


def test_unsigned_entries_are_left_out_with_a_note(workspace: Workspace, tmp_path: Path) -> None:
    with Ledger.open(workspace) as ledger:
        ledger.append([EntryDraft("round.reply", {"i": i}, "node:n1") for i in range(3)])
    done = run_fedgov("audit", "export", "--workspace", str(workspace.path), "--out", str(tmp_path / "b.zip"))
    assert done.returncode == 0
    assert done.stderr == ("note: 3 entries after the newest checkpoint are not signed yet and were left out "
                           "(`fedgov audit checkpoint` signs them)\n")
    assert verify_bundle(tmp_path / "b.zip").entries == 1


def test_a_version_2_directory_bundle_is_refused(travelling: Path, tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "manifest.json").write_text('{"format":"fedgov-evidence-bundle","sha256":{},"version":2}\n')
    done = _travel(travelling, tmp_path / "old")
    assert (done.returncode, done.stderr) == (1, f"error: {tmp_path / 'old'} is a version 2 bundle (a directory), "
                                                 "which this fedgov does not read (it reads version 3, one zip file); "
                                                 "export the ledger again with `fedgov audit export --out FILE.zip`\n")


def test_wrap_to_a_file_that_is_no_public_identity_writes_nothing(governed: Workspace, tmp_path: Path) -> None:
    """Wrapping keys is tested in test_bundle_wrapped_keys.py; here only the refusal of a bad recipient."""
    (tmp_path / "auditor.pub").write_text("not json\n")
    fails_with(["audit", "export", "--wrap-to", str(tmp_path / "auditor.pub"), "--workspace", str(governed.path),
                "--out", str(tmp_path / "b.zip")], f"error: {tmp_path / 'auditor.pub'} is not JSON", code=2)
    assert not (tmp_path / "b.zip").exists()


def test_a_known_checkpoint_catches_a_bundle_of_a_rolled_back_ledger(workspace: Workspace, tmp_path: Path) -> None:
    """An auditor kept a later checkpoint: an older (or cut) bundle is named, not passed."""
    with Ledger.open(workspace) as ledger:
        ledger.append([EntryDraft("round.reply", {"i": i}, "node:n1") for i in range(3)], sign=True)
    old = tmp_path / "old.zip"
    succeeds("audit", "export", "--workspace", str(workspace.path), "--out", str(old))
    keys = load_trusted_keys(workspace.trust_path)
    assert verify_bundle(old, keys, [workspace.head_path]).known == (4,)
    with Ledger.open(workspace) as ledger:
        ledger.append([EntryDraft("round.reply", {"i": 9}, "node:n1")], sign=True)
    with pytest.raises(Exception) as caught:
        verify_bundle(old, keys, [workspace.head_path])
    assert caught.value.failures == [f"known checkpoint {workspace.head_path} covers 5 entries but the bundle's newest "
                                     "checkpoint covers only 4: the ledger was rolled back or truncated"]


def test_a_zip_bomb_member_is_one_line_not_a_crash(governed: Workspace, good: Path, tmp_path: Path) -> None:
    """A crafted bundle lists a member of 320 MiB of zeros (1.5 MB deflated); the verifier, limited to 256 MiB of
    address space, refuses it by name instead of dying of a MemoryError traceback (found by the attacker review)."""
    import hashlib
    import zipfile

    members = read_members(good)
    size, chunk = 320 * 2**20, bytes(2**20)
    zeros = hashlib.sha256()
    for _ in range(size // len(chunk)):
        zeros.update(chunk)
    manifest = json.loads(members["manifest.json"])
    manifest["files"]["padding.bin"] = zeros.hexdigest()
    members["manifest.json"] = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode() + b"\n"
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in sorted(members.items()):
            archive.writestr(name, data)
        with archive.open("padding.bin", "w", force_zip64=True) as member:
            for _ in range(size // len(chunk)):
                member.write(chunk)
    done = subprocess.run(["bash", "-c", f'ulimit -v {256 * 1024}; exec "$0" -m governance.verify "$1" --trusted-key "$2"',
                           sys.executable, str(bomb), str(governed.trust_path)],
                          capture_output=True, text=True, timeout=120, cwd=VERIFY.parents[1])
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"error: padding.bin: {size} bytes once inflated do not fit in this process's memory "
                           "(a crafted bundle, or verify it on a larger machine)\n")
