"""An identity's receipts (docs/access-policy.md, docs/ledger-format.md §8.2): every read an auditor makes keeps, beside
its identity file, its own copy of what it signed for the `audit.read` it appended; `fedgov audit verify --receipts`
then fails on a ledger that lost or replaced that entry, even after the operator signed a checkpoint over the loss.

A ledger with one auditor (alice) and two sealed replies, copied per test; alice reads through the CLI.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from governance import entry_types as et
from governance.ledger import EntryDraft, Ledger, create_workspace
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE, run_fedgov
from tests.governance.attacks import recompute_cache, sql
from tests.governance.auditor_ledger import alice, alice_reads, build_auditor_ledger, fedgov


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


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


# -- attacks on the receipts themselves (an attacker review, 2026-11-30) ---------------------------------------------


def test_a_trust_file_with_two_keys_of_the_ledgers_name_does_not_blame_an_honest_ledger(root: Path):
    """§5 trusts any key of the ledger's name; the registrations are checked the same way."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from governance.verify.checkpoint import VerifierKey

    alice_reads(root)
    trust = Workspace(root / "ws" / ".fedgov").trust_path
    real = VerifierKey.from_text(trust.read_text().strip())
    other = VerifierKey(real.name, Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw,
                                                                                           PublicFormat.Raw))
    trust.write_text(f"{other.to_text()}\n{real.to_text()}\n")
    done = verify(root)
    assert done.returncode == 0 and "receipts: 1 of this ledger match" in done.stdout, done.stderr


def test_a_receipt_naming_an_identity_never_registered_is_bad_input_not_a_ledger_fault(root: Path):
    alice_reads(root)
    receipts = root / "alice" / "alice.receipts"
    receipt = json.loads(receipts.read_text())
    receipts.write_text(json.dumps({**receipt, "writer": "de" * 16}) + "\n")
    done = verify(root)
    assert (done.returncode, done.stderr) == (2, (
        f"error: receipt of seq {receipt['first']} ({receipts}): its writer {'de' * 16} is not an identity this ledger "
        "registered: not a receipt of this ledger's identities\n"))


@pytest.mark.parametrize("edit, says", [
    (lambda line: line[:-1] + ',"count":1}', "not a JSON object with each member once"),
    (lambda line: re.sub(r'(.)=="', lambda m: B64[B64.index(m.group(1)) ^ 1] + '=="', line),  # a pad bit set
     "signature must be 64 bytes in standard padded base64"),
])
def test_a_receipt_in_another_spelling_is_refused(root: Path, edit, says: str):
    """A duplicate member, or a signature whose base64 pad bits are set (the same 64 bytes): one spelling only, as the
    stranger's verifier reads the spec."""
    alice_reads(root)
    receipts = root / "alice" / "alice.receipts"
    receipts.write_text(edit(receipts.read_text().rstrip("\n")) + "\n")
    done = verify(root)
    assert done.returncode == 2 and says in done.stderr and done.stderr.count("\n") == 1, done.stderr


@pytest.mark.parametrize("what", ["/dev/zero", "a sparse 2 GiB file"])
def test_an_endless_or_huge_receipts_file_is_one_line_not_a_traceback(root: Path, what: str):
    path = Path("/dev/zero") if what == "/dev/zero" else root / "huge.receipts"
    if what != "/dev/zero":
        with open(path, "wb") as file:
            file.truncate(2 * 2**30)
    done = fedgov(root, "audit", "verify", "--receipts", str(path))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert ("is not a regular file" if what == "/dev/zero" else "is larger than") in done.stderr


def test_a_receipt_the_disk_takes_only_part_of_is_not_taken_as_kept(root: Path):
    """RLIMIT_FSIZE makes a write stop part-way without an error (Python ignores SIGXFSZ), as a full disk may."""
    alice_reads(root)
    receipts = root / "alice" / "alice.receipts"
    receipts.write_bytes(receipts.read_bytes() + b"\n" * (100_000 - receipts.stat().st_size))  # blank lines
    script = (f"import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (100_100, 100_100))\n"
              f"from pathlib import Path\nfrom governance.ledger.receipts import keep, read_receipts\n"
              f"keep(Path({str(receipts)!r}), read_receipts(Path({str(receipts)!r})))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and done.stderr.rstrip().endswith(
        f"UsageError: the read is recorded in the ledger, but its receipt could not be kept in {receipts}: File too "
        "large; nothing is shown (docs/access-policy.md)"), done.stderr


def test_the_receipts_are_checked_against_the_rows_verified_not_a_later_read(root: Path):
    """A database holder who puts the deleted read's leaf hash back while verify runs (after the rows were checked,
    before the receipts) changes nothing: the receipts are read in the transaction that verified the rows."""
    from governance.errors import VerificationError
    from governance.ledger.receipts import read_receipts
    from governance.ledger.verify import ReceiptsCheck, verify_ledger

    seq = alice_reads(root)
    ws = Workspace(root / "ws" / ".fedgov")
    db = sqlite3.connect(ws.sqlite_path)
    [leaf] = db.execute("SELECT leaf_hash FROM fedgov_entries WHERE seq = ?", (seq,)).fetchone()
    db.close()
    sql(ws, f"DELETE FROM fedgov_entries WHERE seq >= {seq}", f"DELETE FROM fedgov_batch_auth WHERE first_seq >= {seq}")
    recompute_cache(ws)
    with Ledger.open(ws, PASSPHRASE) as operator:
        operator.append([EntryDraft(et.RUN_FINISHED, {"status": "completed"}, et.run_scope("r1"), run_id="r1")],
                        sign=True)
    receipts = root / "alice" / "alice.receipts"
    check = ReceiptsCheck([(receipts, read_receipts(receipts))])

    def meanwhile(store, conn, report, keys) -> None:
        sql(ws, "UPDATE fedgov_entries SET leaf_hash = ? WHERE seq = ?", params=(leaf, seq))  # the window
        check(store, conn, report, keys)

    with pytest.raises(VerificationError, match=rf"^receipt of seq {seq}, appended by .*: the entries there are not"):
        verify_ledger(ws, then=meanwhile)
