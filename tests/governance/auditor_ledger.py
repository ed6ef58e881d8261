"""A ledger with one auditor, alice, whose reads through the CLI keep receipts (tests of docs/ledger-format.md §8.2)."""

from __future__ import annotations

from pathlib import Path

from governance import entry_types as et
from governance.identities import Identity, read_public, write_identity
from governance.ledger import EntryDraft, Ledger, create_workspace
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE, run_fedgov

ALICE = {"FEDGOV_IDENTITY_PASSPHRASE": "alice-secret"}


def build_auditor_ledger(root: Path) -> None:
    """`root/ws/.fedgov`: alice registered as auditor, then two sealed replies, signed; `root/alice/alice.identity`."""
    ws = create_workspace(root / "ws" / ".fedgov", PASSPHRASE)
    alice = Identity.generate("alice", "auditor")
    (root / "alice").mkdir()
    write_identity(alice, root / "alice", ALICE["FEDGOV_IDENTITY_PASSPHRASE"])
    with Ledger.open(ws, PASSPHRASE) as ledger:
        ledger.register_identity(alice.public, "admin")
        ledger.append([EntryDraft(et.ROUND_REPLY, {"node_id": n}, et.node_scope(n), run_id="r1", round=1, node_id=n)
                       for n in ("n1", "n2")], sign=True)


def fedgov(root: Path, *args: str):
    return run_fedgov(*args, "--workspace", str(root / "ws" / ".fedgov"), env=ALICE)


def alice_reads(root: Path) -> int:
    """`fedgov audit log --decrypt` as alice; the seq of the audit.read it appended."""
    done = fedgov(root, "audit", "log", "--decrypt", "--identity", str(root / "alice" / "alice.identity"))
    assert done.returncode == 0, done.stderr
    with Ledger.open(Workspace(root / "ws" / ".fedgov"), PASSPHRASE, write=False) as ledger:
        return ledger.query(et.AUDIT_READ)[-1].seq


def alice(root: Path) -> str:
    """How fedgov names alice: `alice (auditor, <fingerprint>)`."""
    return read_public(root / "alice" / "alice.pub").label
