"""Writing an evidence bundle (docs/ledger-format.md §10): the ledger's signed rows, proved, in one zip.

The public half lives here: the selected entries, an inclusion proof for each against the
newest checkpoint, every checkpoint, meta and the pinned key. The decrypted records beside
them (consent, lineage) come from governance/bundle_records.py. The byte forms and the
reader are the verifier's (governance/verify/bundle.py); this module only writes them.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from governance.errors import UsageError, VerificationError
from governance.ledger import merkle
from governance.ledger.store import LedgerStore
from governance.verify.bundle import (BUNDLE_FORMAT, BUNDLE_VERSION, CHECKPOINT_FIELDS, CHECKPOINTS_FILE, ENTRIES_FILE,
                                      MANIFEST_FILE, META_FILE, PROOFS_FILE, TRUST_FILE, entry_line, jcs_line,
                                      proof_line)
from governance.verify.checkpoint import parse_checkpoint
from governance.verify.leaf import LeafEncoder, as_bytes
from governance.verify.merkle import hash_children

ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # every member's timestamp: the same ledger gives the same bytes


@dataclass(frozen=True)
class Selection:
    """What a bundle holds: entries of one run and/or a time window [since, until); all None = the whole ledger."""

    run: str | None = None
    since: str | None = None  # RFC 3339 UTC in the ledger's own form (…T12:00:00.000000Z): compared as text
    until: str | None = None

    @property
    def complete(self) -> bool:
        return self.run is None and self.since is None and self.until is None

    def matches(self, row: tuple) -> bool:
        return ((self.run is None or row[3] == self.run) and (self.since is None or row[2] >= self.since)
                and (self.until is None or row[2] < self.until))

    def describe(self) -> str:
        parts = [f"--{name} {value}" for name, value in vars(self).items() if value is not None]
        return " ".join(parts) or "the whole ledger"

    def to_dict(self) -> dict[str, str | None]:
        return {"run": self.run, "since": self.since, "until": self.until}


def ledger_time(value: str, option: str) -> str:
    """A date (midnight UTC) or a time with its offset, in the ledger's timestamp form; a naive time is refused."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or (parsed.tzinfo is None and len(value) != 10):
        raise UsageError(f"{option} {value!r}: give a date (2026-01-31) or a time with its offset "
                         "(2026-01-31T12:00:00Z)")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class SignedRows:
    """The public part of a bundle, read in one snapshot of the database."""

    members: dict[str, bytes]  # entries.jsonl, proofs.jsonl, checkpoints.jsonl, meta.json
    entries: list[tuple]  # the selected rows, ENTRY_COLUMNS order
    checkpoints: int
    tree_size: int
    unsigned: int  # entries after the newest checkpoint: never in a bundle


def signed_rows(store: LedgerStore, selection: Selection) -> SignedRows:
    """The selected entries up to the newest checkpoint, each with its inclusion proof against it."""
    with store.read() as conn:  # one snapshot: entries and checkpoints agree
        checkpoints = store.checkpoints(conn)
        if not checkpoints:
            raise VerificationError("the ledger holds no signed checkpoint: nothing to export (run `fedgov audit "
                                    "verify`)")
        size, note = int(checkpoints[-1]["tree_size"]), checkpoints[-1]["note"]
        leaves: list[bytes] = []
        chosen: list[tuple] = []
        rows = store.iter_entries(conn)
        try:
            for row in rows:
                if row[0] >= size:
                    break
                leaves.append(as_bytes(row[10]) if isinstance(row[10], (bytes, memoryview)) else b"")
                if selection.matches(row):
                    chosen.append(row)
        finally:
            rows.close()  # before the connection goes, even when a row was refused
        total = store.size(conn)
    if not chosen:
        raise UsageError(f"nothing to export: no signed entry matches {selection.describe()} (the newest checkpoint "
                         f"covers {size} entries)")
    fetch = _in_memory_tree(leaves, size)
    if merkle.root_from_nodes(size, fetch) != parse_checkpoint(note).root:
        raise VerificationError(f"the ledger's entries do not hash to checkpoint #{checkpoints[-1]['id']}'s root: "
                                "nothing was exported; run `fedgov audit verify`")
    encode = LeafEncoder()
    entries, proofs = [], []
    for row in chosen:
        try:
            entries.append(entry_line(encode, row))
        except (TypeError, ValueError) as err:
            raise VerificationError(f"entry seq {row[0]} cannot be exported: malformed row ({err}); run "
                                    "`fedgov audit verify`") from err
        proofs.append(proof_line(row[0], size, merkle.inclusion_proof(row[0], size, fetch)))
    members = {ENTRIES_FILE: b"".join(entries), PROOFS_FILE: b"".join(proofs),
               CHECKPOINTS_FILE: b"".join(jcs_line({k: row[k] for k in CHECKPOINT_FIELDS}) for row in checkpoints),
               META_FILE: jcs_line(store.meta)}
    return SignedRows(members, chosen, len(checkpoints), size, total - size)


def _in_memory_tree(leaves: list[bytes], size: int) -> merkle.NodeFetcher:
    """Every complete subtree of the first `size` leaves, kept in memory: proofs for thousands of entries at once."""
    if len(leaves) != size:
        raise VerificationError(f"the ledger holds {len(leaves)} of the {size} entries its newest checkpoint covers: "
                                "nothing was exported; run `fedgov audit verify`")
    levels = [leaves]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([hash_children(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
    return lambda keys: {(lvl, idx): levels[lvl][idx] for lvl, idx in keys}


def write_bundle(out: Path, members: dict[str, bytes], selection: Selection) -> None:
    """The zip, all or nothing: written beside `out`, synced, then linked into place; an existing `out` is refused."""
    if out.exists() or out.is_symlink():
        raise UsageError(f"--out {out} exists: a bundle is never written over a file; choose a new name")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: the directory {out.parent} does not exist")
    manifest = {"files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(members.items())},
                "format": BUNDLE_FORMAT, "selection": selection.to_dict(), "version": BUNDLE_VERSION}
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "xb") as fh:
            with zipfile.ZipFile(fh, "w") as archive:
                for name, data in sorted({**members, MANIFEST_FILE: jcs_line(manifest)}.items()):
                    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
                    info.compress_type, info.create_system, info.external_attr = zipfile.ZIP_DEFLATED, 3, 0o644 << 16
                    archive.writestr(info, data, compresslevel=6)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, out)  # fails if `out` appeared meanwhile: never replaced
        except FileExistsError as err:
            raise UsageError(f"--out {out} exists: a bundle is never written over a file; choose a new name") from err
    finally:
        tmp.unlink(missing_ok=True)


def public_members(ws_trust_path: Path) -> dict[str, bytes]:
    """The public keys a verifier may use: the workspace's trust file, bytes unchanged (§5)."""
    return {TRUST_FILE: ws_trust_path.read_bytes()}
