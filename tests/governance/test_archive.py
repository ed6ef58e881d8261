"""The model archive: content-addressed, encrypted at rest, checked on every fetch."""

from __future__ import annotations

import numpy as np
import pytest

from governance.archive import ARCHIVE_SCOPE, archive_model, archive_path, load_model
from governance.digests import arrays_digest
from tests.fedgov_command import run_fedgov

MODEL = [("w", np.arange(12, dtype=np.float32).reshape(3, 4)), ("b", np.zeros(4, dtype=np.float32))]


def test_an_archived_model_comes_back_equal_and_named_by_its_hash(ledger):
    model_hash = archive_model(ledger, MODEL)
    assert model_hash == arrays_digest(MODEL)
    back = load_model(ledger, model_hash)
    assert [n for n, _ in back] == ["w", "b"] and np.array_equal(back[0][1], MODEL[0][1])


def test_the_archive_file_holds_no_plaintext_weights(ledger):
    model_hash = archive_model(ledger, MODEL)
    assert MODEL[0][1].tobytes() not in archive_path(ledger, model_hash).read_bytes()


def test_archiving_the_same_model_twice_keeps_one_file(ledger):
    assert archive_model(ledger, MODEL) == archive_model(ledger, MODEL)
    assert len(list(ledger.workspace.archive_dir.glob("*.model"))) == 1


def test_model_get_writes_npz_that_matches_the_hash(ledger, workspace, tmp_path):
    model_hash = archive_model(ledger, MODEL)
    result = run_fedgov("model", "get", model_hash[:8], "--out", str(tmp_path / "m.npz"),
                        "--workspace", str(workspace.path))
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "m.npz") as f:
        assert arrays_digest([(k, f[k]) for k in f.files]) == model_hash


def test_a_tampered_archive_file_is_refused_in_one_line(ledger, workspace, tmp_path):
    path = archive_path(ledger, archive_model(ledger, MODEL))
    data = bytearray(path.read_bytes())
    data[-5] ^= 1
    path.write_bytes(bytes(data))
    result = run_fedgov("model", "get", path.stem, "--out", str(tmp_path / "m.npz"), "--workspace", str(workspace.path))
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert not (tmp_path / "m.npz").exists()


def test_an_unknown_model_is_one_line(workspace, tmp_path):
    result = run_fedgov("model", "get", "abc123", "--out", str(tmp_path / "m.npz"), "--workspace", str(workspace.path))
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: no archived model matches 'abc123'; "
                                    "model hashes are in `fedgov audit log --type round.aggregated`")


def test_a_shredded_archive_scope_says_key_destroyed(ledger, workspace, tmp_path):
    model_hash = archive_model(ledger, MODEL)
    ledger.shred(ARCHIVE_SCOPE, actor="dpo", reason="erasure request 7")
    result = run_fedgov("model", "get", model_hash, "--out", str(tmp_path / "m.npz"), "--workspace", str(workspace.path))
    assert result.returncode != 0 and "key destroyed" in result.stderr


@pytest.mark.parametrize("suffix", [".txt", ".bin"])
def test_model_get_refuses_an_unknown_output_format(ledger, workspace, tmp_path, suffix):
    model_hash = archive_model(ledger, MODEL)
    result = run_fedgov("model", "get", model_hash, "--out", str(tmp_path / f"m{suffix}"), "--workspace", str(workspace.path))
    assert result.returncode == 2 and "must end in .npz or .pt" in result.stderr
