"""An identity's receipts: its own copy of what it signed for each batch it appended, kept outside the database.

An identity (an auditor, say) appends its `audit.read` entries unsigned: it holds no ledger key,
so they wait in the unsigned tail for the next checkpoint of a holder of the ledger's keys. Until
then a database holder can delete them (rows, batch authenticator, cached tree nodes) and the next
checkpoint would cover the ledger without them. So the identity keeps, beside its identity file
(`N.identity` -> `N.receipts`), one line per batch: the batch authenticator it stored (§4.4 of
docs/ledger-format.md) and its signature. `fedgov audit verify --receipts N.receipts` checks that
the ledger still holds, at each receipt's seqs, the entries the identity appended (§8.2 there).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from governance.errors import UsageError, VerificationError
from governance.ledger.roles import BATCH_PURPOSE, Registered, batch_members
from governance.verify.canonical import canonical_bytes

RECEIPT_MEMBERS = ("count", "first", "leaves", "ledger_id", "purpose", "signature", "writer")
MAX_LINE = 4096  # a receipt line is ~330 bytes; anything far longer is not one
MAX_FILE = 1 << 30  # bytes: some three million reads; a larger file is not an identity's receipts
MAX_SEQ = 2**53 - 1  # I-JSON's integers, as every seq in the ledger


@dataclass(frozen=True)
class Receipt:
    """One batch an identity appended: where (`first`, `count`), which leaves, and the identity's signature."""

    ledger_id: str
    first: int
    count: int
    leaves: str  # hex SHA-256 of the batch's leaf hashes, concatenated in seq order
    writer: str  # the identity's fingerprint
    signature: bytes  # Ed25519 over `message()`: the batch authenticator's tag

    @classmethod
    def of(cls, ledger_id: str, first: int, leaf_hashes: Sequence[bytes], writer: str, tag: bytes) -> Receipt:
        return cls(ledger_id, first, len(leaf_hashes), hashlib.sha256(b"".join(leaf_hashes)).hexdigest(), writer, tag)

    def message(self) -> bytes:
        """What the identity signed: the batch message of docs/ledger-format.md §5 rule 3a."""
        return canonical_bytes(batch_members(self.ledger_id, self.first, self.count, self.leaves, self.writer))

    def line(self) -> bytes:
        """The receipt as one line of its file: JCS of the batch message's members and `signature` (base64)."""
        members = batch_members(self.ledger_id, self.first, self.count, self.leaves, self.writer)
        return canonical_bytes({**members, "signature": base64.b64encode(self.signature).decode("ascii")}) + b"\n"

    @property
    def seqs(self) -> str:
        return f"seq {self.first}" if self.count == 1 else f"seqs {self.first}..{self.first + self.count - 1}"


def receipts_path(identity_file: Path) -> Path:
    """Where an identity's receipts are kept: beside its identity file, `N.identity` -> `N.receipts`."""
    return identity_file.with_suffix(".receipts")


def keep(path: Path, receipts: Sequence[Receipt]) -> None:
    """Append receipts to the identity's file (a regular file, made 0600), every byte durable on return."""
    if not receipts:
        return

    def refused(why: str) -> UsageError:
        return UsageError(f"the read is recorded in the ledger, but its receipt could not be kept in {path}: {why}; "
                          "nothing is shown (docs/access-policy.md)")

    data = b"".join(r.line() for r in receipts)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise refused("not a regular file")
            written = 0
            while written < len(data):  # a full disk may take part of a write without an error
                done = os.write(fd, data[written:])
                if done <= 0:
                    raise refused("the file took no more bytes")
                written += done
            os.fsync(fd)
        finally:
            os.close(fd)
        directory = os.open(path.parent, os.O_RDONLY)  # the file's name too, when it was just made
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as err:
        raise refused(err.strerror or type(err).__name__) from None


def read_receipts(path: Path) -> list[Receipt]:
    """Every receipt in a receipts file, read line by line (a regular file of at most MAX_FILE bytes); UsageError,
    one line naming the file and line, for anything else. Blank lines (ASCII whitespace only) are skipped."""
    receipts = []
    try:
        with open(path, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise UsageError(f"receipts file {path} is not a regular file")
            if info.st_size > MAX_FILE:
                raise UsageError(f"receipts file {path} is larger than {MAX_FILE} bytes: not an identity's receipts")
            number = 0
            while text := file.readline(MAX_LINE + 2):
                number += 1
                if len(text) > MAX_LINE + 1 or (len(text) == MAX_LINE + 1 and not text.endswith(b"\n")):
                    raise UsageError(f"{path} line {number} is not a fedgov receipt: longer than {MAX_LINE} bytes")
                if text.strip():
                    receipts.append(_parse(text.rstrip(b"\n"), f"{path} line {number}"))
    except OSError as err:
        raise UsageError(f"cannot read receipts file {path}: {err.strerror or type(err).__name__}") from None
    if not receipts:
        raise UsageError(f"{path} holds no receipt (an identity's reads write them: docs/access-policy.md)")
    return receipts


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({key for key, _ in pairs}) != len(pairs):
        raise ValueError("a member appears twice")
    return dict(pairs)


def _parse(text: bytes, where: str) -> Receipt:
    def bad(why: str) -> UsageError:
        return UsageError(f"{where} is not a fedgov receipt: {why}")

    try:  # no longer than MAX_LINE: read_receipts reads no more
        obj: Any = json.loads(text.decode("utf-8"), object_pairs_hook=_unique)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad("not a JSON object with each member once") from None
    if not isinstance(obj, dict) or sorted(obj) != list(RECEIPT_MEMBERS):
        raise bad(f"its members must be exactly {', '.join(RECEIPT_MEMBERS)}")
    first, count = obj["first"], obj["count"]
    if type(first) is not int or type(count) is not int or not (0 <= first and 1 <= count and first + count <= MAX_SEQ):
        raise bad("first must be an integer >= 0 and count one >= 1")
    if obj["purpose"] != BATCH_PURPOSE:
        raise bad(f"purpose must be {BATCH_PURPOSE!r}")
    leaves, writer, ledger_id = obj["leaves"], obj["writer"], obj["ledger_id"]
    if not (isinstance(leaves, str) and len(leaves) == 64 and all(c in "0123456789abcdef" for c in leaves)):
        raise bad("leaves must be 64 lowercase hex digits")
    if not (isinstance(writer, str) and isinstance(ledger_id, str) and writer and ledger_id):
        raise bad("writer and ledger_id must be non-empty strings")
    try:
        signature = base64.b64decode(obj["signature"], validate=True) if isinstance(obj["signature"], str) else b""
    except (binascii.Error, ValueError):
        signature = b""
    if len(signature) != 64 or base64.b64encode(signature).decode("ascii") != obj["signature"]:
        raise bad("signature must be 64 bytes in standard padded base64")
    return Receipt(ledger_id, first, count, leaves, writer, signature)


@dataclass(frozen=True)
class MatchedReceipts:
    """What `check_receipts` found: receipts of this ledger that matched (signed or in the unsigned tail)."""

    matched: int
    signed: int
    other_ledgers: int

    @property
    def unsigned(self) -> int:
        return self.matched - self.signed

    def to_dict(self) -> dict[str, int]:
        return {"matched": self.matched, "signed": self.signed, "unsigned": self.unsigned,
                "other_ledgers": self.other_ledgers}


def check_receipts(receipts: Sequence[Receipt], source: str, ledger_id: str, identities: dict[str, Registered],
                   size: int, signed_size: int, leaf_hashes: Callable[[int, int], list[bytes]]) -> MatchedReceipts:
    """Check each receipt of this ledger against a ledger that has just verified, in the transaction that verified
    it (so its stored leaf hashes are the entries' own, and `identities` match its signed registrations): its
    writer registered here and its signature theirs (else the file is not a genuine receipt: UsageError), then
    the entries at its seqs present and hashing to its `leaves` (else VerificationError: the ledger lost or
    replaced what that identity appended). Receipts of other ledgers are counted and skipped; a file with none
    of this one's is an error."""
    mine = [r for r in receipts if r.ledger_id == ledger_id]
    if not mine:
        raise UsageError(f"none of the {len(receipts)} receipts in {source} is of this ledger ({ledger_id})")
    signed = 0
    for receipt in mine:
        registered = identities.get(receipt.writer)
        if registered is None:  # the identity table is one for one with the signed registrations (the caller)
            raise UsageError(f"receipt of {receipt.seqs} ({source}): its writer {receipt.writer} is not an identity "
                             "this ledger registered: not a receipt of this ledger's identities")
        if not registered.public.verify(receipt.signature, receipt.message()):
            raise UsageError(f"receipt of {receipt.seqs} ({source}): its signature does not verify with "
                             f"the key of {registered.public.label}: the receipts file was altered")
        who = registered.public.label
        end = receipt.first + receipt.count
        if end > size:
            raise VerificationError(f"receipt of {receipt.seqs}, appended by {who}: the ledger holds only {size} "
                                    "entries: entries this identity appended are gone (deleted, or the ledger "
                                    "rolled back)")
        if hashlib.sha256(b"".join(leaf_hashes(receipt.first, end))).hexdigest() != receipt.leaves:
            raise VerificationError(f"receipt of {receipt.seqs}, appended by {who}: the entries there are not the "
                                    "ones this identity appended (deleted and replaced, or rewritten)")
        signed += end <= signed_size
    return MatchedReceipts(len(mine), signed, len(receipts) - len(mine))
