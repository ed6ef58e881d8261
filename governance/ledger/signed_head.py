"""The signer's memory: the latest checkpoint this workspace signed, kept outside the database.

A signer that trusted only the database would sign whatever history the database holds
now. An operator who drops the triggers, deletes the checkpoint rows and rewrites entries
would get the rewrite signed by the next round. So the workspace keeps the largest tree it
ever signed in the file `latest_checkpoint` (the signed note text of docs/ledger-format.md
§5, next to the keystore), and the signer checks three things before it signs
(`check_before_signing`):

1. the file is there and carries a valid signature by this ledger's key (a missing file
   is no excuse: the operator adopts the database's state explicitly, and that is recorded);
2. the database still holds a checkpoint at least as large, with the same root at the
   file's size (a rolled-back or emptied checkpoint table is refused);
3. the entries still hash to the file's root at the file's size (rewritten history is refused).

The file only ever grows: it is replaced atomically, under the workspace lock, and only by
a larger tree. A crash between the database commit and the file write leaves it one
checkpoint behind, which the checks accept, since the database's newer checkpoint extends it.
"""

from __future__ import annotations

from collections.abc import Callable

from governance.errors import VerificationError
from governance.ledger.checkpoint import verify_checkpoint
from governance.private_files import write_atomic
from governance.verify.checkpoint import Checkpoint, CheckpointError, VerifierKey, parse_checkpoint
from governance.workspace import Workspace


class SigningRefusedError(VerificationError):
    """The signer will not sign: the history in the database is not the one it signed before."""


def read_head(ws: Workspace) -> str | None:
    """The note text of the latest checkpoint this workspace signed; None when there is no file."""
    try:
        return ws.head_path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise SigningRefusedError(f"cannot read {ws.head_path}: {err}") from err


def advance_head(ws: Workspace, note: str) -> None:
    """Record `note` as the latest signed checkpoint, unless the file already holds a larger tree."""
    size = parse_checkpoint(note).size
    with ws.lock():
        current = read_head(ws)
        if current is not None:
            try:
                if parse_checkpoint(current).size >= size:
                    return
            except CheckpointError:
                pass  # an unreadable file is replaced by a good note; the signer refused it before
        write_atomic(ws.head_path, note.encode("utf-8"))


def check_before_signing(ws: Workspace, head_text: str | None, own_key: VerifierKey,
                         db_latest: tuple[int, Checkpoint] | None, size: int, root_at: Callable[[int], bytes]) -> None:
    """Refuse (SigningRefusedError) unless the database's history extends the one last signed here.

    `db_latest` is the database's latest checkpoint (id, parsed and signature-checked), no
    larger than the tree of `size` entries; `root_at(n)` is the root the stored tree gives at
    size n. The entries are judged first (cut, or rewritten), then the checkpoint rows.
    """
    investigate = ("investigate with `fedgov audit verify --known-checkpoint " + str(ws.head_path) + "`; "
                   "once the cause is understood, `fedgov audit checkpoint --adopt` records the decision")
    if head_text is None:
        raise SigningRefusedError(
            f"refusing to sign: this workspace holds no record of the last checkpoint it signed ({ws.head_path} "
            "is missing), so it cannot tell a rewritten database from the real one; if the workspace predates "
            "that file, or the file was lost, run `fedgov audit verify` and then `fedgov audit checkpoint --adopt`")
    head = parse_head(ws, head_text, own_key)
    if size < head.size:
        raise SigningRefusedError(
            f"refusing to sign: the database holds {size} entries, but this workspace signed a tree of {head.size} "
            f"(the database was rolled back or cut); {investigate}")
    stored_root = root_at(head.size)
    if stored_root != head.root:
        raise SigningRefusedError(
            f"refusing to sign: the stored tree's root at size {head.size} is {stored_root.hex()}, not the "
            f"{head.root.hex()} this workspace signed (entries, or the cache of tree nodes, rewritten: "
            f"`fedgov audit verify` tells which); {investigate}")
    if db_latest is None:
        raise SigningRefusedError(
            f"refusing to sign: the database holds no checkpoint, but this workspace signed a tree of {head.size} "
            f"entries (checkpoints deleted); {investigate}")
    cp_id, latest = db_latest
    if latest.size < head.size:
        raise SigningRefusedError(
            f"refusing to sign: the database's latest checkpoint #{cp_id} covers {latest.size} entries, but this "
            f"workspace signed a tree of {head.size} (checkpoints deleted from the database); {investigate}")
    if latest.size == head.size and latest.root != head.root:
        raise SigningRefusedError(
            f"refusing to sign: the database's checkpoint #{cp_id} and {ws.head_path} sign different roots at "
            f"tree size {head.size} (forked history); {investigate}")


def parse_head(ws: Workspace, head_text: str, own_key: VerifierKey) -> Checkpoint:
    """The signed head, checked against this ledger's own key."""
    try:
        return verify_checkpoint(head_text, own_key, own_key.name)
    except CheckpointError as err:
        raise SigningRefusedError(f"refusing to sign: {ws.head_path} is not a checkpoint signed by this ledger's "
                                  f"key ({err}); investigate with `fedgov audit verify`") from err
