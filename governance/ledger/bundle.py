"""Offline evidence bundles: a ledger's public rows as plain files, verifiable with no database.

Layout (docs/ledger-format.md §10): `entries.jsonl`, `checkpoints.jsonl`, `meta.json`,
`trusted_keys` and `manifest.json` (SHA-256 of each of the others). The bundle holds
no secret: ciphertexts travel, data keys do not. Reading needs only the standard library,
so an auditor's machine needs neither SQLAlchemy nor a database driver.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from governance.errors import UsageError, VerificationError
from governance.ledger.entry import LeafEncoder

BUNDLE_FORMAT = "fedgov-evidence-bundle"
BUNDLE_VERSION = 1
ENTRIES_FILE = "entries.jsonl"
CHECKPOINTS_FILE = "checkpoints.jsonl"
META_FILE = "meta.json"
TRUST_FILE = "trusted_keys"
MANIFEST_FILE = "manifest.json"
DATA_FILES = (ENTRIES_FILE, CHECKPOINTS_FILE, META_FILE, TRUST_FILE)
CHECKPOINT_FIELDS = {"id": int, "tree_size": int, "note": str, "consistency_proof": str, "created": str}


class BundleError(VerificationError):
    """A bundle file is missing, unreadable, or does not match its manifest."""


def export_bundle(ws: Any, out: Path) -> tuple[int, int]:
    """Write the workspace ledger's bundle into `out` (new or empty); return (entries, checkpoints)."""
    from governance.ledger.store import LedgerStore

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an empty directory")
    out.mkdir(parents=True, exist_ok=True)
    digests: dict[str, str] = {}
    store = LedgerStore.open(ws.db_url)
    try:
        with store.read() as conn:  # one snapshot: entries and checkpoints agree
            count = _write_entries(out / ENTRIES_FILE, store.iter_entries(conn), digests)
            checkpoints = store.checkpoints(conn)
        lines = [json.dumps({k: row[k] for k in CHECKPOINT_FIELDS}, sort_keys=True, separators=(",", ":"))
                 for row in checkpoints]
        digests[CHECKPOINTS_FILE] = _write(out / CHECKPOINTS_FILE, "".join(line + "\n" for line in lines))
        digests[META_FILE] = _write(out / META_FILE, json.dumps(store.meta, sort_keys=True, indent=1) + "\n")
    finally:
        store.close()
    digests[TRUST_FILE] = _write(out / TRUST_FILE, ws.trust_path.read_text(encoding="utf-8"))
    manifest = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "sha256": digests}
    _write(out / MANIFEST_FILE, json.dumps(manifest, sort_keys=True, separators=(",", ":")) + "\n")
    return count, len(checkpoints)


def _write(path: Path, text: str) -> str:
    data = text.encode("utf-8")
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _write_entries(path: Path, rows: Iterator[tuple], digests: dict[str, str]) -> int:
    """One line per entry: its leaf-bytes object with `leaf_hash` added before the closing brace."""
    encode = LeafEncoder()
    digest = hashlib.sha256()
    count = 0
    with path.open("wb") as f:
        batch: list[bytes] = []
        for seq, entry_type, ts, run_id, round_, node_id, model, config, key_id, ct, leaf in rows:
            body = encode(seq, ts, entry_type, run_id, round_, node_id, model, config, key_id, bytes(ct))
            batch.append(body[:-1] + b',"leaf_hash":"' + base64.b64encode(bytes(leaf)) + b'"}\n')
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


class BundleReader:
    """Streams a bundle's rows in the shapes `verify_rows` takes, hashing each file as it goes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            manifest = json.loads((path / MANIFEST_FILE).read_bytes())
        except FileNotFoundError as err:
            raise UsageError(f"{path} is not a fedgov evidence bundle (no {MANIFEST_FILE})") from err
        except ValueError as err:
            raise BundleError(f"{MANIFEST_FILE}: not valid JSON ({err})") from err
        if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT \
                or manifest.get("version") != BUNDLE_VERSION or not isinstance(manifest.get("sha256"), dict) \
                or sorted(manifest["sha256"]) != sorted(DATA_FILES):
            raise BundleError(f"{MANIFEST_FILE}: not a version {BUNDLE_VERSION} {BUNDLE_FORMAT} manifest")
        self.expected: dict[str, str] = manifest["sha256"]
        self.seen: dict[str, str] = {}

    def read_text(self, name: str) -> str:
        """A whole small file, hashed."""
        try:
            data = (self.path / name).read_bytes()
        except FileNotFoundError as err:
            raise BundleError(f"{name} is missing from the bundle") from err
        self.seen[name] = hashlib.sha256(data).hexdigest()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise BundleError(f"{name}: not UTF-8 ({err})") from err

    def checkpoints(self) -> list[dict[str, Any]]:
        rows = []
        for number, line in enumerate(self.read_text(CHECKPOINTS_FILE).splitlines(), start=1):
            row = _json_line(line, CHECKPOINTS_FILE, number)
            for name, kind in CHECKPOINT_FIELDS.items():
                if type(row.get(name)) is not kind:
                    raise BundleError(f"{CHECKPOINTS_FILE} line {number}: field {name!r} is missing or not {kind.__name__}")
            rows.append(row)
        return rows

    def entries(self) -> Iterator[tuple]:
        """Entry rows (ENTRY_COLUMNS order) with ciphertext and leaf hash as bytes."""
        digest = hashlib.sha256()
        try:
            f = (self.path / ENTRIES_FILE).open("rb")
        except FileNotFoundError as err:
            raise BundleError(f"{ENTRIES_FILE} is missing from the bundle") from err
        with f:
            for number, line in enumerate(f, start=1):
                digest.update(line)
                row = _json_line(line, ENTRIES_FILE, number)
                try:
                    yield (row["seq"], row["entry_type"], row["timestamp"], row["run_id"], row["round"], row["node_id"],
                           row["model_hash"], row["config_hash"], row["key_id"],
                           base64.b64decode(row["ciphertext"], validate=True),
                           base64.b64decode(row["leaf_hash"], validate=True))
                except KeyError as err:
                    raise BundleError(f"{ENTRIES_FILE} line {number} (entry seq {row.get('seq')}): "
                                      f"field {err.args[0]!r} is missing") from err
                except (TypeError, binascii.Error) as err:
                    raise BundleError(f"{ENTRIES_FILE} line {number} (entry seq {row.get('seq')}): "
                                      "ciphertext or leaf_hash is not base64") from err
        self.seen[ENTRIES_FILE] = digest.hexdigest()

    def check_manifest(self) -> None:
        """Name any file whose bytes differ from the manifest (after the signed checks have passed)."""
        for name in DATA_FILES:
            if name not in self.seen:
                self.read_text(name)
            if self.seen[name] != self.expected[name]:
                raise BundleError(f"{name}: SHA-256 {self.seen[name]} does not match the manifest's "
                                  f"{self.expected[name]} (file altered or corrupted)")


def _json_line(line: bytes | str, name: str, number: int) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except ValueError as err:
        raise BundleError(f"{name} line {number}: not valid JSON ({err})") from err
    if not isinstance(row, dict):
        raise BundleError(f"{name} line {number}: not a JSON object")
    return row
