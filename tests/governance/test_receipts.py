"""An identity's receipts (docs/access-policy.md, docs/ledger-format.md §8.2): every read an auditor makes keeps, beside
its identity file, its own copy of what it signed for the `audit.read` it appended; `fedgov audit verify --receipts`
then fails on a ledger that lost or replaced that entry, even after the operator signed a checkpoint over the loss.

A ledger with one auditor (alice) and two sealed replies, copied per test; alice reads through the CLI.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from pathlib import Path

import pytest

from governance import entry_types as et
from governance.ledger import EntryDraft, Ledger, create_workspace
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE, run_fedgov
from tests.governance.attacks import recompute_cache, sql
from tests.governance.auditor_ledger import alice, alice_reads, build_auditor_ledger, fedgov


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("receipts")
    build_auditor_ledger(root)
    return root


@pytest.fixture
def root(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template, tmp_path / "copy")
    return tmp_path / "copy"


def verify(root: Path, *args: str):
    return fedgov(root, "audit", "verify", "--receipts", str(root / "alice" / "alice.receipts"), *args)


def test_an_identitys_read_keeps_its_receipt_beside_its_identity_file(root: Path):
    seq = alice_reads(root)
    receipts = root / "alice" / "alice.receipts"
    [line] = receipts.read_text().splitlines()
    receipt = json.loads(line)
    assert (receipt["first"], receipt["count"], receipt["purpose"]) == (seq, 1, "fedgov-batch-v1")
    assert stat.S_IMODE(receipts.stat().st_mode) == 0o600
    alice_reads(root)
    assert len(receipts.read_text().splitlines()) == 2  # one line per read, appended


def test_the_receipts_of_a_genuine_ledger_match_signed_or_not(root: Path):
    alice_reads(root)
    done = verify(root)
    assert done.returncode == 0, done.stderr
    assert "receipts: 1 of this ledger match its entries (0 signed, 1 in the unsigned tail)" in done.stdout
    assert fedgov(root, "audit", "checkpoint").returncode == 0  # the operator's next checkpoint
    assert "receipts: 1 of this ledger match its entries (1 signed, 0 in the unsigned tail)" in verify(root).stdout


def test_a_read_deleted_before_the_checkpoint_is_caught_by_its_receipt(root: Path):
    """The attack of docs/access-policy.md "An identity's unsigned reads": the operator deletes alice's audit.read
    (row, batch authenticator, cache) and signs a checkpoint without it. The ledger verifies; her receipt does not."""
    seq = alice_reads(root)
    ws = Workspace(root / "ws" / ".fedgov")
    sql(ws, f"DELETE FROM fedgov_entries WHERE seq >= {seq}", f"DELETE FROM fedgov_batch_auth WHERE first_seq >= {seq}")
    recompute_cache(ws)
    assert fedgov(root, "audit", "checkpoint").returncode == 0
    assert fedgov(root, "audit", "verify", "--require-signed").returncode == 0  # without the receipt: nothing seen
    done = verify(root)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", (
        f"error: receipt of seq {seq}, appended by {alice(root)}: the ledger holds only {seq} entries: entries this "
        "identity appended are gone (deleted, or the ledger rolled back)\n"))


def test_a_read_replaced_by_another_entry_at_its_seq_is_caught_by_its_receipt(root: Path):
    seq = alice_reads(root)
    ws = Workspace(root / "ws" / ".fedgov")
    sql(ws, f"DELETE FROM fedgov_entries WHERE seq >= {seq}", f"DELETE FROM fedgov_batch_auth WHERE first_seq >= {seq}")
    recompute_cache(ws)
    with Ledger.open(ws, PASSPHRASE) as operator:  # the operator's own entry where alice's was, signed
        operator.append([EntryDraft(et.RUN_FINISHED, {"status": "completed"}, et.run_scope("r1"), run_id="r1")],
                        sign=True)
    done = verify(root)
    assert (done.returncode, done.stderr) == (1, (
        f"error: receipt of seq {seq}, appended by {alice(root)}: the entries there are not the ones this identity "
        "appended (deleted and replaced, or rewritten)\n"))


def test_an_altered_receipt_is_refused_as_input_not_blamed_on_the_ledger(root: Path):
    seq = alice_reads(root)
    receipts = root / "alice" / "alice.receipts"
    receipt = json.loads(receipts.read_text())
    receipt["leaves"] = hashlib.sha256(b"another batch").hexdigest()
    receipts.write_text(json.dumps(receipt) + "\n")
    done = verify(root)
    assert (done.returncode, done.stderr) == (2, (
        f"error: receipt of seq {seq} ({receipts}): its signature does not verify with the key of {alice(root)}: the "
        "receipts file was altered\n"))


@pytest.mark.parametrize("text, says", [
    ("not json\n", "line 1 is not a fedgov receipt: not a JSON object"),
    ("\n" + "[" * 100_000 + "\n", "line 2 is not a fedgov receipt: longer than 4096 bytes"),
    ('{"first": 1}\n', "line 1 is not a fedgov receipt: its members must be exactly count, first, leaves, ledger_id, "
                       "purpose, signature, writer"),
    ("\n\n", "holds no receipt"),
])
def test_a_file_that_is_not_receipts_is_one_line_naming_where(root: Path, text: str, says: str):
    receipts = root / "alice" / "alice.receipts"
    receipts.write_text(text)
    done = verify(root)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_receipts_of_another_ledger_only_are_an_error_not_an_empty_success(root: Path, tmp_path: Path):
    alice_reads(root)
    other = create_workspace(tmp_path / "other" / ".fedgov", PASSPHRASE)
    done = run_fedgov("audit", "verify", "--receipts", str(root / "alice" / "alice.receipts"),
                      "--workspace", str(other.path))
    assert done.returncode == 2 and done.stderr.startswith("error: none of the 1 receipts in ") and \
        done.stderr.rstrip().endswith("is of this ledger (" + Ledger.open(other, PASSPHRASE, write=False).ledger_id + ")")


def test_a_receipt_that_cannot_be_kept_shows_nothing(root: Path):
    receipts = root / "alice" / "alice.receipts"
    receipts.mkdir()  # not a file: the receipt cannot be written
    done = fedgov(root, "audit", "log", "--decrypt", "--identity", str(root / "alice" / "alice.identity"))
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: the read is recorded in the ledger, but its receipt could not be kept in "
                                  f"{receipts}: ")
