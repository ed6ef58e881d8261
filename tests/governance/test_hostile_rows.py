"""Rows and files of the wrong shape, put there by whoever holds the database: one line, never a traceback.

Those that are one SQL edit and one `audit verify` line are tamper vectors (tests/data/tamper).
"""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from governance.keystore import read_keystore
from governance.ledger import EntryDraft, Ledger
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE
from tests.governance.attacks import count, fails_with, sql, succeeds


@pytest.fixture
def grown(workspace: Workspace) -> Workspace:
    with Ledger.open(workspace) as ledger:
        ledger.append([EntryDraft("round.reply", {"i": i}, "node:n1") for i in range(39)], sign=True)
    return workspace


def _verify(ws: Workspace) -> list[str]:
    return ["audit", "verify", "--workspace", str(ws.path)]


def test_a_tree_node_stored_as_text_is_named_and_repaired(grown: Workspace) -> None:
    sql(grown, "UPDATE fedgov_tree_nodes SET hash = 'not a hash' WHERE level = 5 AND idx = 0")
    fails_with(_verify(grown), "error: 1 altered cached tree node(s) differ from the entries' hashes (level 5 idx 0): "
               "the cache of tree nodes is corrupted (entries and checkpoints verify); rebuild it with `fedgov audit "
               "repair-cache`")
    succeeds("audit", "repair-cache", "--actor", "ops", "--workspace", str(grown.path))
    assert succeeds(*_verify(grown)).startswith("checked 41 entries")  # 40 and the repair's record


def test_a_checkpoint_note_stored_as_bytes_is_one_line(grown: Workspace) -> None:
    sql(grown, "UPDATE fedgov_checkpoints SET note = CAST(note AS BLOB) WHERE id = 2")
    fails_with(_verify(grown), "error: checkpoint #2: bad signature: checkpoint note is bytes, not text")
    fails_with(["audit", "checkpoint", "--workspace", str(grown.path)],
               "error: refusing to sign: the database's checkpoint #2 is not signed by this ledger's key (checkpoint "
               "note is bytes, not text)")


def test_a_deleted_meta_row_is_one_line(grown: Workspace) -> None:
    sql(grown, "DELETE FROM fedgov_meta WHERE key = 'public_key'")
    fails_with(_verify(grown), "error: the ledger's meta table lacks public_key (edited by hand?)")
    fails_with(["audit", "checkpoint", "--workspace", str(grown.path)],
               "error: the ledger's meta table lacks public_key (edited by hand?)")


def test_a_round_beyond_the_json_safe_range_is_refused(grown: Workspace) -> None:
    from governance.errors import UsageError

    with Ledger.open(grown) as ledger, pytest.raises(UsageError, match=r"within ±\(2\^53-1\)"):
        ledger.append([EntryDraft("round.reply", {}, "node:n1", round=2**60)])


def test_a_keystore_that_opens_but_holds_no_keys_is_one_line(grown: Workspace) -> None:
    from governance.keystore import KeyMaterial, write_keystore

    keys = read_keystore(grown.keystore_path, PASSPHRASE)
    write_keystore(grown.keystore_path, KeyMaterial(kek=keys.kek[:31], signing_seed=keys.signing_seed), PASSPHRASE)
    fails_with(["audit", "checkpoint", "--workspace", str(grown.path)],
               f"error: {grown.keystore_path} opens with this passphrase but does not hold fedgov keys", code=2)


def test_a_keystore_that_is_a_directory_is_one_line(grown: Workspace) -> None:
    grown.keystore_path.unlink()
    grown.keystore_path.mkdir()
    fails_with(["audit", "checkpoint", "--workspace", str(grown.path)], f"error: {grown.keystore_path} is not a file",
               code=2)


def test_a_trust_file_that_is_not_utf8_is_one_line(grown: Workspace) -> None:
    grown.trust_path.write_bytes(b"\xff\xfe not text\n")
    fails_with(_verify(grown), f"error: cannot read trusted key file {grown.trust_path}: ...", code=2)


def test_a_trusted_key_option_naming_a_directory_is_a_usage_error(grown: Workspace, tmp_path: Path) -> None:
    fails_with([*_verify(grown), "--trusted-key", str(tmp_path)],
               f"error: --trusted-key {tmp_path} is a directory, not a key or a trust file", code=2)


def test_a_malformed_trusted_key_option_is_a_usage_error(grown: Workspace) -> None:
    fails_with([*_verify(grown), "--trusted-key", "fedgov.ledger/x+00000000+AAAA"],
               "error: --trusted-key: verifier key is not an Ed25519 key", code=2)


def test_a_signature_spelled_with_other_padding_bits_is_refused(grown: Workspace) -> None:
    db = sqlite3.connect(grown.sqlite_path)
    note = db.execute("SELECT note FROM fedgov_checkpoints WHERE id = 2").fetchone()[0]
    db.close()
    head, _, b64 = note.rstrip("\n").rpartition(" ")
    raw = base64.b64decode(b64)
    assert b64.endswith("=")  # 68 bytes: two unused bits before the padding
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    respelled = b64[:-2] + last[last.index(b64[-2]) ^ 1] + "="
    assert base64.b64decode(respelled) == raw and respelled != b64
    sql(grown, "UPDATE fedgov_checkpoints SET note = ? WHERE id = 2", params=(f"{head} {respelled}\n",))
    fails_with(_verify(grown), "error: checkpoint #2: bad signature: signature is not base64 (in its one spelling)")


def test_a_row_under_an_unknown_key_reads_as_unknown_not_destroyed(grown: Workspace) -> None:
    from tests.governance.attacks import insert_forged_entry

    seq = insert_forged_entry(grown, "cd" * 16, b"\x00" * 40)
    out = json.loads(succeeds("audit", "log", "--decrypt", "--format", "json", "--workspace", str(grown.path)))
    assert [r["payload"] for r in out if r["seq"] == seq] == ["<unknown data key>"]
    assert count(grown, "fedgov_entries") == seq + 1


def test_a_trusted_key_too_long_for_a_file_name_is_one_line(grown: Workspace) -> None:
    fails_with([*_verify(grown), "--trusted-key", "a" * 5000], "error: --trusted-key: malformed verifier key ...",
               code=2)


@pytest.mark.parametrize("command", [["audit", "verify"], ["audit", "log", "--decrypt"], ["audit", "export"]],
                         ids=["verify", "log", "export"])
def test_a_ciphertext_stored_as_a_huge_integer_is_one_line(grown: Workspace, tmp_path: Path,
                                                           command: list[str]) -> None:
    sql(grown, "UPDATE fedgov_entries SET ciphertext = 1099511627776 WHERE seq = 9")
    extra = ["--out", str(tmp_path / "bundle")] if command[-1] == "export" else []
    result_code = 2 if command[1] == "log" else 1
    fails_with([*command, *extra, "--workspace", str(grown.path)], "error: entry seq 9...", code=result_code)
    assert not (tmp_path / "bundle").exists() or not any((tmp_path / "bundle").iterdir())
