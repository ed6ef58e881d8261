"""A witness cosigns a ledger's checkpoints only while each extends the last one it cosigned.

C2SP tlog-cosignature/v1 (docs/ledger-format.md §5.1). The operator holds the signing key,
so a fork (two histories, both signed) or a rollback is only caught by someone who kept
state outside the ledger: the witness refuses to cosign it, and an auditor who requires
the witness's cosignature sees the refusal.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from governance.cli.witness import check_cosigned, witness_keys_option
from governance.errors import UsageError
from governance.ledger import EntryDraft, Ledger
from governance.verify.checkpoint import VerifierKey, parse_checkpoint, verify_trusted
from governance.verify.cosignature import COSIGNATURE_DIR, CosignatureError, WitnessKey, cosigned_message, \
    verify_cosigned
from governance.witness import (KEY_FILE, STATE_FILE, BundleSource, Cosigned, Witness, WitnessRefusal,
                                WorkspaceSource, init_witness, parse_private_key, store_cosignature,
                                witness_key)
from governance.workspace import Workspace
from tests.fedgov_command import run_fedgov

VECTORS = Path(__file__).resolve().parents[1] / "data" / "c2sp-cosignature"  # see its README


def _grow(ws: Workspace, n: int, run: str = "r1") -> None:
    """Append n entries and sign a checkpoint, as a round does."""
    with Ledger.open(ws) as ledger:
        ledger.append([EntryDraft("update_received", {"i": i, "run": run}, f"run:{run}", run_id=run, round=i)
                       for i in range(n)], sign=True)


def _fork(ws: Workspace, where: Path) -> Workspace:
    """A copy of the workspace: the same ledger and key, to grow into a second history."""
    shutil.copytree(ws.path, where)
    return Workspace.discover(where)


def _make_witness(tmp_path: Path, name: str = "witness.example/w1") -> Witness:
    init_witness(tmp_path / name.replace("/", "_"), name)
    return Witness(tmp_path / name.replace("/", "_"))


def _cosign(witness: Witness, ws: Workspace) -> Cosigned:
    source = WorkspaceSource(ws.path)
    try:
        done = witness.cosign(source)
    finally:
        source.close()
    store_cosignature(ws.path / COSIGNATURE_DIR, done, witness.key)
    return done


def _state(witness: Witness) -> dict:
    return json.loads((witness.state_dir / STATE_FILE).read_bytes())


# -- the format, against bytes other implementations made -----------------------------------------


def test_a_real_witness_network_cosignature_verifies() -> None:
    note = (VECTORS / "cosigned-checkpoint.note").read_bytes().decode("utf-8")
    remora = WitnessKey.from_text((VECTORS / "witness.vkey").read_text())
    assert remora.key_id.hex() == "da77ade7"
    assert WitnessKey.from_text(remora.to_text()) == remora
    cosigned = verify_cosigned(note, (), [remora])
    assert [(c.witness.name, c.timestamp) for c in cosigned.cosignatures] == [("remora.n621.de", 1779573024)]
    log_key = VerifierKey.from_text((VECTORS / "log.vkey").read_text())
    assert verify_trusted(note, [log_key]).size == 1432088532  # the log's own Ed25519 line, unknown lines ignored
    with pytest.raises(CosignatureError, match="cosignature by witness 'remora.n621.de' on tree size 42 is invalid"):
        verify_cosigned(note.replace("\n1432088532\n", "\n42\n"), (), [remora])


def test_the_private_key_is_go_signed_note_text() -> None:
    name, private_key = parse_private_key((VECTORS / "go-note-witness.key").read_text(), "vector")
    go_vkey = VerifierKey.from_text((VECTORS / "go-note-witness.vkey").read_text())
    key = witness_key(name, private_key)
    assert (name, key.public_key) == (go_vkey.name, go_vkey.public_key)
    assert key.key_id != go_vkey.key_id  # same key, type 0x04: another key ID than the 0x01 one


def test_the_cosigned_message_is_header_time_then_body() -> None:
    body = "example.com/log\n3\n" + base64.b64encode(bytes(32)).decode() + "\n"
    assert cosigned_message(body, 1679315147) == b"cosignature/v1\ntime 1679315147\n" + body.encode()


def test_a_log_key_is_not_taken_for_a_witness_key() -> None:
    with pytest.raises(CosignatureError, match=r"a log's \(0x01\) key, not a witness's"):
        WitnessKey.from_text((VECTORS / "log.vkey").read_text())


# -- the witness ---------------------------------------------------------------------------------


def test_init_makes_a_private_key_and_refuses_to_overwrite(tmp_path: Path) -> None:
    key = init_witness(tmp_path / "w", "witness.example/w1")
    assert (tmp_path / "w" / KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "w" / "witness.vkey").read_text() == key.to_text() + "\n"
    with pytest.raises(UsageError, match="already holds a witness"):
        init_witness(tmp_path / "w", "witness.example/w2")
    with pytest.raises(UsageError, match="not a signed-note key name"):
        init_witness(tmp_path / "x", "has space")


def test_cosign_round_trip_and_a_second_cosign_after_appends(workspace: Workspace, tmp_path: Path) -> None:
    witness = _make_witness(tmp_path)
    first = _cosign(witness, workspace)
    assert (first.previous, first.checkpoint.size, first.pinned_from) == (None, 1, f"workspace {workspace.path}'s "
                                                                                    "trusted keys")
    _grow(workspace, 5)
    second = _cosign(witness, workspace)
    assert (second.previous.size, second.checkpoint.size, second.pinned_from) == (1, 6, None)
    assert _state(witness)["logs"][second.checkpoint.origin]["tree_size"] == 6
    stored = (workspace.path / COSIGNATURE_DIR / "6.note").read_text()
    assert stored == second.cosigned_note and stored.startswith(second.note)
    size, cosignatures = check_cosigned(workspace.path, None, [witness.key], [])
    assert (size, [c.witness for c in cosignatures]) == (6, [witness.key])


def test_two_witnesses_share_one_file_per_tree_size(workspace: Workspace, tmp_path: Path) -> None:
    one, two = _make_witness(tmp_path, "w.example/1"), _make_witness(tmp_path, "w.example/2")
    _cosign(one, workspace)
    _cosign(two, workspace)
    _cosign(one, workspace)  # again, later: its line is replaced, not repeated
    note = parse_checkpoint((workspace.path / COSIGNATURE_DIR / "1.note").read_text())
    assert [name for name, _ in note.signatures] == [note.origin, "w.example/2", "w.example/1"]
    assert len(check_cosigned(workspace.path, None, [one.key, two.key], [])[1]) == 2


def test_a_fork_is_refused_by_the_witness_that_saw_the_other_history(workspace: Workspace, tmp_path: Path) -> None:
    fork = _fork(workspace, tmp_path / "fork")
    _grow(workspace, 3, run="shown-to-alice")
    _grow(fork, 3, run="shown-to-bob")  # same size, another root, signed by the same key
    witness = _make_witness(tmp_path)
    _cosign(witness, workspace)
    before = _state(witness)
    with pytest.raises(WitnessRefusal, match=r"^refusing to cosign: the log shows root [0-9a-f]{64} at tree size 4, "
                                             r"not the root [0-9a-f]{64} that this witness cosigned before \(split "
                                             r"view: two histories\)$"):
        _cosign(witness, fork)
    _grow(fork, 2, run="shown-to-bob")  # and once it has grown past: the proof fails
    with pytest.raises(WitnessRefusal, match="tree size 6 is not consistent with tree size 4 that this witness "
                                             r"cosigned before \(split view, or rewritten history\)"):
        _cosign(witness, fork)
    assert _state(witness) == before
    assert not (fork.path / COSIGNATURE_DIR).exists()


def test_an_auditor_shown_another_witnessed_history_sees_a_split_view(workspace: Workspace, tmp_path: Path) -> None:
    fork = _fork(workspace, tmp_path / "fork")
    _grow(workspace, 3, run="a")
    _grow(fork, 3, run="b")
    witness = _make_witness(tmp_path)
    _cosign(witness, fork)  # the witness saw only the fork
    with pytest.raises(CosignatureError, match=r"cosigned root [0-9a-f]{64} at tree size 4, but this ledger's "
                                               r"checkpoint there has root [0-9a-f]{64}: .*\(split view\)"):
        check_cosigned(workspace.path, None, [witness.key], [fork.path / COSIGNATURE_DIR / "4.note"])


def test_a_rollback_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    _grow(workspace, 2)
    snapshot = _fork(workspace, tmp_path / "snapshot")  # a backup at tree size 3
    _grow(workspace, 4)
    witness = _make_witness(tmp_path)
    _cosign(witness, workspace)
    with pytest.raises(WitnessRefusal, match=r"^refusing to cosign: the log shows tree size 3, smaller than tree size "
                                             r"7 that this witness cosigned before \(rollback\)$"):
        _cosign(witness, snapshot)


def test_a_log_key_other_than_the_pinned_one_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    witness = _make_witness(tmp_path)
    _cosign(witness, workspace)
    other = VerifierKey(parse_checkpoint(_cosign(witness, workspace).note).origin, bytes(32))
    source = WorkspaceSource(workspace.path)
    with pytest.raises(UsageError, match="--log-key differs"):
        witness.cosign(source, other)
    source.close()


# -- the auditor's requirement -------------------------------------------------------------------


def test_require_cosigned_fails_without_a_cosignature(workspace: Workspace, tmp_path: Path) -> None:
    witness, stranger = _make_witness(tmp_path), _make_witness(tmp_path, "other.example/w")
    with pytest.raises(CosignatureError, match=r"^no cosignature by witness 'witness.example/w1' \([0-9a-f]{8}\) on "
                                               r"the latest signed checkpoint \(tree size 1\)$"):
        check_cosigned(workspace.path, None, [witness.key], [])
    _cosign(stranger, workspace)
    with pytest.raises(CosignatureError, match="no cosignature by witness 'witness.example/w1'"):
        check_cosigned(workspace.path, None, [witness.key], [])
    _cosign(witness, workspace)
    _grow(workspace, 2)
    with pytest.raises(CosignatureError, match=r"has not cosigned the latest signed checkpoint \(tree size 3\); the "
                                               "newest it cosigned is tree size 1"):
        check_cosigned(workspace.path, None, [witness.key], [])


def test_a_tampered_cosignature_fails(workspace: Workspace, tmp_path: Path) -> None:
    witness = _make_witness(tmp_path)
    done = _cosign(witness, workspace)
    path = workspace.path / COSIGNATURE_DIR / "1.note"
    raw = bytearray(base64.b64decode(done.line.rpartition(" ")[2]))
    for offset in (11, 40):  # the timestamp's last byte; a byte of the signature
        tampered = bytearray(raw)
        tampered[offset] ^= 1
        path.write_text(done.note + done.line.rpartition(" ")[0] + " " + base64.b64encode(tampered).decode() + "\n")
        with pytest.raises(CosignatureError, match=f"{path}: the cosignature by witness 'witness.example/w1' on tree "
                                                   r"size 1 is invalid \(altered, or not this checkpoint\)"):
            check_cosigned(workspace.path, None, [witness.key], [])


def _export(ws: Workspace, out: Path) -> Path:
    done = run_fedgov("audit", "export", "--workspace", str(ws.path), "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_a_bundle_is_cosigned_through_its_chain_of_proofs(workspace: Workspace, tmp_path: Path) -> None:
    witness = _make_witness(tmp_path)
    _grow(workspace, 2)
    _cosign(witness, workspace)  # trusts tree size 3
    _grow(workspace, 3)
    _grow(workspace, 1)
    bundle = _export(workspace, tmp_path / "bundle.zip")
    source = BundleSource(bundle)
    done = witness.cosign(source)
    (tmp_path / "cosigned.note").write_text(done.cosigned_note, encoding="utf-8")  # a bundle is not changed
    assert (done.previous.size, done.checkpoint.size) == (3, 7)
    assert check_cosigned(None, bundle, [witness.key], [tmp_path / "cosigned.note"])[0] == 7


def test_an_export_carries_the_cosignatures_of_its_checkpoints(workspace: Workspace, tmp_path: Path) -> None:
    import zipfile

    witness = _make_witness(tmp_path)
    _cosign(witness, workspace)
    _grow(workspace, 2)
    _cosign(witness, workspace)
    bundle = _export(workspace, tmp_path / "bundle.zip")
    with zipfile.ZipFile(bundle) as archive:
        carried = sorted(n for n in archive.namelist() if n.startswith(f"{COSIGNATURE_DIR}/"))
    assert carried == ["cosignatures/1.note", "cosignatures/3.note"]
    assert check_cosigned(None, bundle, [witness.key], [])[0] == 3


def test_the_cli_cosigns_and_verify_requires_it(workspace: Workspace, tmp_path: Path) -> None:
    state, ws = tmp_path / "witness", str(workspace.path)
    made = run_fedgov("audit", "witness", "init", "--name", "witness.example/w1", "--state", str(state))
    assert made.returncode == 0, made.stderr
    vkey = made.stdout.split("verifier key: ")[1].strip()
    missing = run_fedgov("audit", "verify", "-w", ws, "--require-cosigned-by", vkey)
    assert (missing.returncode, missing.stderr.strip()) == (1, "error: no cosignature by witness 'witness.example/w1' "
                                                                f"({vkey.split('+')[1]}) on the latest signed "
                                                                "checkpoint (tree size 1)")
    done = run_fedgov("audit", "witness", "cosign", "--state", str(state), "-w", ws)
    assert done.returncode == 0, done.stderr
    assert "cosigned tree size 1 of fedgov.ledger/" in done.stdout and "(first use)" in done.stdout
    ok = run_fedgov("audit", "verify", "-w", ws, "--require-cosigned-by", str(state / "witness.vkey"))
    assert ok.returncode == 0, ok.stderr
    assert "cosigned: tree size 1 by witness 'witness.example/w1' at " in ok.stdout


def test_a_malformed_witness_key_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="^--require-cosigned-by nonsense: malformed witness key 'nonsense'$"):
        witness_keys_option(["nonsense"])
    (tmp_path / "empty").write_text("# no key\n")
    with pytest.raises(UsageError, match="the file names no witness key"):
        witness_keys_option([str(tmp_path / "empty")])


def test_verify_bundle_requires_the_cosignatures_it_carries_and_a_bundle_is_cosigned_to_a_file(
        workspace: Workspace, tmp_path: Path) -> None:
    witness = _make_witness(tmp_path)
    _grow(workspace, 2)
    _cosign(witness, workspace)
    bundle = _export(workspace, tmp_path / "bundle.zip")
    done = run_fedgov("audit", "verify", "--bundle", str(bundle), "--trusted-key", str(workspace.trust_path),
                      "--require-cosigned-by", witness.key.to_text())
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("cosigned: tree size 3 by witness 'witness.example/w1' at ")
    refused = run_fedgov("audit", "witness", "cosign", "--state", str(tmp_path / "witness"), "--bundle", str(bundle))
    assert (refused.returncode, refused.stderr) == (2, "error: with --bundle, give --out FILE: a bundle is not changed "
                                                       "after export; hand the file to `fedgov audit verify --bundle B "
                                                       "--cosigned FILE`\n")


def test_a_restored_backup_with_its_own_older_cosignature_is_a_rollback(workspace: Workspace, tmp_path: Path) -> None:
    """The witness cosigned size 3, then size 7; a backup of the workspace at size 3 (its 3.note included) is
    restored: that the latest checkpoint there is cosigned must not hide the newer one the auditor holds."""
    witness = _make_witness(tmp_path)
    _grow(workspace, 2)
    _cosign(witness, workspace)
    backup = tmp_path / "backup" / ".fedgov"
    shutil.copytree(workspace.path, backup)
    _grow(workspace, 4, run="later")
    _cosign(witness, workspace)
    newest = workspace.path / COSIGNATURE_DIR / "7.note"  # what the witness cosigned last, handed to the auditor
    with pytest.raises(CosignatureError, match=r"cosigned tree size 7, larger than the latest signed checkpoint here "
                                               r"\(tree size 3\): this ledger was rolled back"):
        check_cosigned(backup, None, [witness.key], [newest])
