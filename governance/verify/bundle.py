"""Evidence bundles, version 3 (docs/ledger-format.md §10): one zip, its files and their one byte form each.

Read here, checked in bundle_check.py. Every JSON file and line is RFC 8785 (JCS) then LF, except
`entries.jsonl` (§10); the reader re-encodes what it parsed and compares bytes, so a duplicate
member, other whitespace or other escapes (the same thing to a lenient parser) is refused,
naming the file and line. The zip is only a carrier: members are read by name, in memory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from governance.verify.canonical import CanonicalError, canonical_bytes
from governance.verify.errors import UsageError, VerificationError
from governance.verify.leaf import LeafEncoder, as_bytes

BUNDLE_FORMAT = "fedgov-evidence-bundle"
BUNDLE_VERSION = 3  # 1 and 2 (directories) are no longer read: export again
MANIFEST_FILE = "manifest.json"
ENTRIES_FILE = "entries.jsonl"
PROOFS_FILE = "proofs.jsonl"
CHECKPOINTS_FILE = "checkpoints.jsonl"
META_FILE = "meta.json"
TRUST_FILE = "trusted_keys"
CONSENT_FILE = "consent.json"
LINEAGE_FILE = "lineage.prov.json"
REQUIRED_FILES = (CHECKPOINTS_FILE, CONSENT_FILE, ENTRIES_FILE, LINEAGE_FILE, META_FILE, PROOFS_FILE, TRUST_FILE)
SELECTION_KEYS = ("run", "since", "until")
CHECKPOINT_FIELDS = {"id": int, "tree_size": int, "note": str, "consistency_proof": str, "created": str}
ENTRY_FIELDS = ("ciphertext", "config_hash", "entry_type", "key_id", "model_hash", "node_id", "round", "run_id",
                "seq", "timestamp", "leaf_hash")
HEX64 = re.compile(r"[0-9a-f]{64}")


class BundleError(VerificationError):
    """A bundle file is missing, unreadable, or not in its one byte form."""


class BundleFailures(VerificationError):
    """Every failure a bundle's checks found, one line each (the CLI prints them all)."""

    def __init__(self, failures: Sequence[str]) -> None:
        self.failures = list(failures)
        more = f" (and {len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
        super().__init__(self.failures[0] + more)


def jcs_line(value: Any) -> bytes:
    """A JSON value's one byte form in a bundle: RFC 8785 (JCS), then LF."""
    return canonical_bytes(value) + b"\n"


def entry_line(encode: LeafEncoder, row: tuple) -> bytes:
    """An entries.jsonl line: the leaf-bytes object (§2) with `leaf_hash` added last, then LF."""
    seq, entry_type, ts, run_id, round_, node_id, model, config, key_id, ct, leaf = row
    body = encode(seq, ts, entry_type, run_id, round_, node_id, model, config, key_id, as_bytes(ct))
    return body[:-1] + b',"leaf_hash":"' + base64.b64encode(as_bytes(leaf)) + b'"}\n'


def proof_line(seq: int, tree_size: int, hashes: Sequence[bytes]) -> bytes:
    """A proofs.jsonl line: the JCS of {"hashes": [...], "seq", "tree_size"} written out (a test holds them equal)."""
    listed = b",".join(b'"' + base64.b64encode(h) + b'"' for h in hashes)
    return b'{"hashes":[%s],"seq":%d,"tree_size":%d}\n' % (listed, seq, tree_size)


class Bundle:
    """A bundle read into memory: its manifest checked, its files by name, each parsed on request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        files = _zip_members(path)
        manifest = _canonical_json(files.pop(MANIFEST_FILE), MANIFEST_FILE)
        if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{MANIFEST_FILE}: not a {BUNDLE_FORMAT} manifest")
        if manifest.get("version") != BUNDLE_VERSION:
            raise BundleError(f"{MANIFEST_FILE}: bundle version {manifest.get('version')!r} is not read by this fedgov "
                              f"(it reads version {BUNDLE_VERSION}); export the ledger again with `fedgov audit export`")
        digests, selection = manifest.get("files"), manifest.get("selection")
        if sorted(manifest) != ["files", "format", "selection", "version"] or not isinstance(digests, dict) \
                or not all(isinstance(v, str) and HEX64.fullmatch(v) for v in digests.values()) \
                or not isinstance(selection, dict) or sorted(selection) != sorted(SELECTION_KEYS) \
                or not all(v is None or isinstance(v, str) for v in selection.values()):
            raise BundleError(f"{MANIFEST_FILE}: not a version {BUNDLE_VERSION} manifest (members files, format, "
                              "selection, version; one lower-case hex SHA-256 per file; run, since, until)")
        missing = [f"{MANIFEST_FILE} does not list {name}, which every bundle holds"
                   for name in REQUIRED_FILES if name not in digests]
        missing += [f"{name} is listed in {MANIFEST_FILE} but missing from the bundle"
                    for name in sorted(digests) if name not in files]
        missing += [f"{name} is in the bundle but not listed in {MANIFEST_FILE}" for name in sorted(files)
                    if name not in digests]
        if missing:
            raise BundleFailures(missing)
        self.digests: dict[str, str] = digests
        self.selection: dict[str, str | None] = selection
        self.files = files

    @property
    def complete(self) -> bool:
        """Whether the bundle claims the whole ledger up to its newest checkpoint (no filter)."""
        return all(value is None for value in self.selection.values())

    def digest_failures(self) -> list[str]:
        """One line for each file whose SHA-256 differs from the manifest's."""
        failures = []
        for name in sorted(self.digests):
            actual = hashlib.sha256(self.files[name]).hexdigest()
            if actual != self.digests[name]:
                failures.append(f"{name}: SHA-256 {actual} does not match the manifest's {self.digests[name]} "
                                "(file altered or corrupted)")
        return failures

    def text(self, name: str) -> str:
        try:
            return self.files[name].decode("utf-8")
        except UnicodeDecodeError as err:
            raise BundleError(f"{name}: not UTF-8 ({err})") from err

    def json_object(self, name: str) -> dict[str, Any]:
        """A file holding one JSON object as JCS+LF (meta.json, consent.json, lineage.prov.json)."""
        value = _canonical_json(self.files[name], name)
        if not isinstance(value, dict):
            raise BundleError(f"{name}: not a JSON object")
        return value

    def meta(self) -> dict[str, Any]:
        """`meta.json`: one object of strings; its ledger_id is bound to the checkpoints' origin."""
        meta = self.json_object(META_FILE)
        if not all(isinstance(v, str) for v in meta.values()):
            raise BundleError(f"{META_FILE}: not an object of strings")
        return meta

    def _lines(self, name: str) -> list[bytes]:
        data = self.files[name]
        if data and not data.endswith(b"\n"):
            raise BundleError(f"{name}: the last line does not end with LF")
        return [line + b"\n" for line in data.split(b"\n")[:-1]]

    def checkpoints(self) -> list[dict[str, Any]]:
        rows = []
        for number, line in enumerate(self._lines(CHECKPOINTS_FILE), start=1):
            row = _canonical_json(line, f"{CHECKPOINTS_FILE} line {number}")
            if not isinstance(row, dict) or sorted(row) != sorted(CHECKPOINT_FIELDS):
                raise BundleError(f"{CHECKPOINTS_FILE} line {number}: members must be exactly "
                                  f"{', '.join(sorted(CHECKPOINT_FIELDS))}")
            for name, kind in CHECKPOINT_FIELDS.items():
                if type(row[name]) is not kind:
                    raise BundleError(f"{CHECKPOINTS_FILE} line {number}: field {name!r} is not {kind.__name__}")
            rows.append(row)
        return rows

    def entries(self) -> list[tuple]:
        """Entry rows (ENTRY_COLUMNS order) with ciphertext and leaf hash as bytes; each line in its §10 form."""
        encode = LeafEncoder()
        return [_entry_row(line, number, encode) for number, line in enumerate(self._lines(ENTRIES_FILE), start=1)]

    def proofs(self) -> list[tuple[int, int, list[bytes]]]:
        """(seq, tree size, hashes) per proofs.jsonl line."""
        proofs = []
        for number, line in enumerate(self._lines(PROOFS_FILE), start=1):
            where = f"{PROOFS_FILE} line {number}"
            row = _json(line, where)  # its byte form: re-encoded below
            if not isinstance(row, dict) or sorted(row) != ["hashes", "seq", "tree_size"] \
                    or type(row["seq"]) is not int or type(row["tree_size"]) is not int \
                    or not isinstance(row["hashes"], list):
                raise BundleError(f"{where}: members must be exactly hashes (array), seq and tree_size (integers)")
            try:
                hashes = [base64.b64decode(h, validate=True) for h in row["hashes"]]
            except (TypeError, binascii.Error) as err:
                raise BundleError(f"{where}: a hash is not base64") from err
            if any(len(h) != 32 for h in hashes):
                raise BundleError(f"{where}: every hash must be the padded base64 of 32 bytes")
            if proof_line(row["seq"], row["tree_size"], hashes) != line:
                raise BundleError(f"{where}: not in its canonical byte form (RFC 8785 JSON then LF, "
                                  "docs/ledger-format.md §10)")
            proofs.append((row["seq"], row["tree_size"], hashes))
        return proofs


def _zip_members(path: Path) -> dict[str, bytes]:
    """Every member of the zip by name; a directory, a duplicate name or an unreadable member fails."""
    if path.is_dir():
        if (path / MANIFEST_FILE).is_file():
            raise BundleError(f"{path} is a version 2 bundle (a directory), which this fedgov does not read (it reads "
                              f"version {BUNDLE_VERSION}, one zip file); export the ledger again with "
                              "`fedgov audit export --out FILE.zip`")
        raise UsageError(f"{path} is a directory, not a fedgov evidence bundle (a zip file)")
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError as err:
        raise UsageError(f"no bundle at {path}") from err
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise UsageError(f"{path} is not a fedgov evidence bundle (not a zip file)") from err
    files: dict[str, bytes] = {}
    with archive:
        for info in archive.infolist():
            if info.filename in files:
                raise BundleError(f"the zip holds {info.filename} twice")
            if info.is_dir():
                raise BundleError(f"{info.filename}: a directory entry (a bundle holds files only)")
            try:
                files[info.filename] = archive.read(info)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, zlib.error) as err:
                raise BundleError(f"{info.filename}: cannot be read from the zip ({err})") from err
            except MemoryError:  # a crafted member (a zip bomb) is a named refusal, not a crash
                raise BundleError(f"{info.filename}: {info.file_size} bytes once inflated do not fit in this "
                                  "process's memory (a crafted bundle, or verify it on a larger machine)") from None
    if MANIFEST_FILE not in files:
        raise UsageError(f"{path} is not a fedgov evidence bundle (no {MANIFEST_FILE})")
    return files


def _entry_row(line: bytes, number: int, encode: LeafEncoder) -> tuple:
    where = f"{ENTRIES_FILE} line {number}"
    row = _json(line, where)
    if not isinstance(row, dict) or sorted(row) != sorted(ENTRY_FIELDS):
        raise BundleError(f"{where}: members must be exactly {', '.join(ENTRY_FIELDS)}")
    seq = row["seq"]
    where = f"{where} (entry seq {seq})"
    try:
        parsed = (seq, row["entry_type"], row["timestamp"], row["run_id"], row["round"], row["node_id"],
                  row["model_hash"], row["config_hash"], row["key_id"],
                  base64.b64decode(row["ciphertext"], validate=True), base64.b64decode(row["leaf_hash"], validate=True))
    except (TypeError, binascii.Error) as err:
        raise BundleError(f"{where}: ciphertext or leaf_hash is not base64") from err
    try:
        again = entry_line(encode, parsed)
    except (TypeError, ValueError) as err:
        raise BundleError(f"{where}: a member has the wrong JSON type ({err})") from err
    if again != line:
        raise BundleError(f"{where}: not in the byte form of docs/ledger-format.md §10 (re-encoded, it differs: "
                          "duplicate or reordered members, other whitespace, escapes or base64)")
    return parsed


def _json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as err:
        raise BundleError(f"{where}: not valid JSON ({type(err).__name__})") from err


def _canonical_json(data: bytes, where: str) -> Any:
    """Parse a JCS+LF text and insist it is exactly that: the one byte form a file or line may take."""
    value = _json(data, where)
    try:
        again = jcs_line(value)
    except (CanonicalError, UnicodeError) as err:
        raise BundleError(f"{where}: has no canonical JSON form ({type(err).__name__})") from err
    if again != data:
        raise BundleError(f"{where}: not in its canonical byte form (RFC 8785 JSON then LF, "
                          "docs/ledger-format.md §10)")
    return value
