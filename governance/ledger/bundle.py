"""Writing an offline evidence bundle: a ledger's public rows as plain files (docs/ledger-format.md §10).

The bundle holds no secret: ciphertexts travel, data keys do not. Its layout, byte forms
and reader are the verifier's (governance/verify/bundle.py); this module only writes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from governance.errors import UsageError, VerificationError
from governance.verify.bundle import (BUNDLE_FORMAT, BUNDLE_VERSION, CHECKPOINT_FIELDS, CHECKPOINTS_FILE, DATA_FILES,
                                      ENTRIES_FILE, MANIFEST_FILE, META_FILE, TRUST_FILE, entry_line, jcs_line)
from governance.verify.leaf import LeafEncoder
from governance.workspace import Workspace


def export_bundle(ws: Workspace, out: Path) -> tuple[int, int]:
    """Write the workspace ledger's bundle into `out` (new or empty); return (entries, checkpoints).

    All or nothing: on any failure the files written so far (and `out`, if this made it) go.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an empty directory")
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        return _export_into(ws, out)
    except BaseException:
        for name in (*DATA_FILES, MANIFEST_FILE):
            (out / name).unlink(missing_ok=True)
        if made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def _export_into(ws: Workspace, out: Path) -> tuple[int, int]:
    from governance.ledger.store import LedgerStore

    digests: dict[str, str] = {}
    store = LedgerStore.open(ws.db_url, readonly=True)
    try:
        with store.read() as conn:  # one snapshot: entries and checkpoints agree
            rows = store.iter_entries(conn)
            try:
                count = _write_entries(out / ENTRIES_FILE, rows, digests)
            finally:
                rows.close()  # before the connection goes, even when a row was refused
            checkpoints = store.checkpoints(conn)
        lines = b"".join(jcs_line({k: row[k] for k in CHECKPOINT_FIELDS}) for row in checkpoints)
        digests[CHECKPOINTS_FILE] = _write(out / CHECKPOINTS_FILE, lines)
        digests[META_FILE] = _write(out / META_FILE, jcs_line(store.meta))
    finally:
        store.close()
    digests[TRUST_FILE] = _write(out / TRUST_FILE, ws.trust_path.read_bytes())
    manifest = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "sha256": digests}
    _write(out / MANIFEST_FILE, jcs_line(manifest))
    return count, len(checkpoints)


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _write_entries(path: Path, rows: Iterator[tuple], digests: dict[str, str]) -> int:
    """One line per entry: its leaf-bytes object with `leaf_hash` added before the closing brace."""
    encode = LeafEncoder()
    digest = hashlib.sha256()
    count = 0
    with path.open("wb") as f:
        batch: list[bytes] = []
        for row in rows:
            try:
                batch.append(entry_line(encode, row))
            except (TypeError, ValueError) as err:
                raise VerificationError(f"entry seq {row[0]} cannot be exported: malformed row ({err}); run "
                                        "`fedgov audit verify`") from err
            count += 1
            if len(batch) >= 10000:
                chunk = b"".join(batch)
                digest.update(chunk)
                f.write(chunk)
                batch = []
        chunk = b"".join(batch)
        digest.update(chunk)
        f.write(chunk)
    digests[ENTRIES_FILE] = digest.hexdigest()
    return count
