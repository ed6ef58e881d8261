"""Offline evidence bundles (docs/ledger-format.md §10): read and verified with no database.

Files: `entries.jsonl`, `checkpoints.jsonl`, `meta.json`, `trusted_keys` and `manifest.json`
(SHA-256 of each of the others). Every JSON line and file has exactly one byte form: the
reader re-encodes what it parsed and compares bytes, so a duplicate member, other
whitespace or other escapes (the same thing to a lenient parser) is refused, naming the line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from governance.verify.canonical import CanonicalError, canonical_bytes
from governance.verify.checkpoint import CheckpointError, VerifierKey, parse_trusted_keys, verify_trusted
from governance.verify.errors import UsageError, VerificationError
from governance.verify.leaf import LeafEncoder, as_bytes
from governance.verify.rows import KnownCheckpoint, VerifyReport, ledger_origin, verify_rows

BUNDLE_FORMAT = "fedgov-evidence-bundle"
BUNDLE_VERSION = 2  # 1: checkpoints.jsonl and meta.json had no fixed byte form; no longer read
ENTRIES_FILE = "entries.jsonl"
CHECKPOINTS_FILE = "checkpoints.jsonl"
META_FILE = "meta.json"
TRUST_FILE = "trusted_keys"
MANIFEST_FILE = "manifest.json"
DATA_FILES = (ENTRIES_FILE, CHECKPOINTS_FILE, META_FILE, TRUST_FILE)
CHECKPOINT_FIELDS = {"id": int, "tree_size": int, "note": str, "consistency_proof": str, "created": str}
ENTRY_FIELDS = ("ciphertext", "config_hash", "entry_type", "key_id", "model_hash", "node_id", "round", "run_id",
                "seq", "timestamp", "leaf_hash")


class BundleError(VerificationError):
    """A bundle file is missing, unreadable, or does not match its manifest."""


def jcs_line(value: Any) -> bytes:
    """A JSON value's one byte form in a bundle: RFC 8785 (JCS), then LF."""
    return canonical_bytes(value) + b"\n"


def entry_line(encode: LeafEncoder, row: tuple) -> bytes:
    """An entries.jsonl line: the leaf-bytes object (§2) with `leaf_hash` added last, then LF."""
    seq, entry_type, ts, run_id, round_, node_id, model, config, key_id, ct, leaf = row
    body = encode(seq, ts, entry_type, run_id, round_, node_id, model, config, key_id, as_bytes(ct))
    return body[:-1] + b',"leaf_hash":"' + base64.b64encode(as_bytes(leaf)) + b'"}\n'


def verify_bundle(path: Path, trusted: Sequence[VerifierKey] | None = None,
                  known: Sequence[KnownCheckpoint] = ()) -> VerifyReport:
    """Verify a bundle: the checks of `verify_rows`, from files, then every file against the manifest.

    Trusts `trusted`, else the key file shipped in the bundle (whose worth is only as good
    as the channel the bundle came by, unless a known checkpoint pins the signer).
    """
    reader = BundleReader(path)
    shipped = reader.read_text(TRUST_FILE)
    if trusted:
        keys = list(trusted)
    else:
        try:
            keys = parse_trusted_keys(shipped, f"bundle file {TRUST_FILE}")
        except CheckpointError as err:
            raise BundleError(f"{TRUST_FILE}: {err}") from err
        keys = signers_of(known, keys) if known else keys
    origin = ledger_origin(reader.meta(), "bundle file meta.json")
    report = verify_rows(reader.entries(), reader.checkpoints(), keys, origin=origin, known=known)
    reader.check_manifest()
    return report


def signers_of(known: Sequence[KnownCheckpoint], keys: Sequence[VerifierKey]) -> list[VerifierKey]:
    """The keys among `keys` that signed every known checkpoint: a note kept from before pins its signer.

    Without this, a bundle could ship an extra key under the ledger's name and sign a forged
    continuation with it, while the known checkpoint still matched the genuine prefix.
    """
    pinned = []
    for key in keys:
        try:
            for item in known:
                verify_trusted(item.text, [key])
        except CheckpointError:
            continue
        pinned.append(key)
    if not pinned:
        raise VerificationError("no key in the bundle's trusted_keys signed every --known-checkpoint")
    return pinned


class BundleReader:
    """Streams a bundle's rows in the shapes `verify_rows` takes, hashing each file as it goes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            data = (path / MANIFEST_FILE).read_bytes()
        except FileNotFoundError as err:
            raise UsageError(f"{path} is not a fedgov evidence bundle (no {MANIFEST_FILE})") from err
        except OSError as err:
            raise UsageError(f"cannot read {path / MANIFEST_FILE}: {err.strerror}") from err
        manifest = _canonical_json(data, MANIFEST_FILE)
        if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{MANIFEST_FILE}: not a {BUNDLE_FORMAT} manifest")
        if manifest.get("version") != BUNDLE_VERSION:
            raise BundleError(f"{MANIFEST_FILE}: bundle version {manifest.get('version')!r} is not read by this fedgov "
                              f"(it reads version {BUNDLE_VERSION}); export the ledger again with `fedgov audit export`")
        digests = manifest.get("sha256")
        if sorted(manifest) != ["format", "sha256", "version"] or not isinstance(digests, dict) \
                or sorted(digests) != sorted(DATA_FILES) or not all(isinstance(v, str) for v in digests.values()):
            raise BundleError(f"{MANIFEST_FILE}: not a version {BUNDLE_VERSION} {BUNDLE_FORMAT} manifest")
        self.expected: dict[str, str] = digests
        self.seen: dict[str, str] = {}

    def read_bytes(self, name: str) -> bytes:
        """A whole small file, hashed."""
        try:
            data = (self.path / name).read_bytes()
        except FileNotFoundError as err:
            raise BundleError(f"{name} is missing from the bundle") from err
        except OSError as err:
            raise BundleError(f"{name}: cannot be read ({err.strerror})") from err
        self.seen[name] = hashlib.sha256(data).hexdigest()
        return data

    def read_text(self, name: str) -> str:
        """A whole small UTF-8 file, hashed."""
        try:
            return self.read_bytes(name).decode("utf-8")
        except UnicodeDecodeError as err:
            raise BundleError(f"{name}: not UTF-8 ({err})") from err

    def meta(self) -> dict[str, Any]:
        """`meta.json`: one JCS object of strings; its ledger_id is bound to the checkpoints' origin."""
        meta = _canonical_json(self.read_bytes(META_FILE), META_FILE)
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise BundleError(f"{META_FILE}: not an object of strings")
        return meta

    def checkpoints(self) -> list[dict[str, Any]]:
        data = self.read_bytes(CHECKPOINTS_FILE)
        if data and not data.endswith(b"\n"):
            raise BundleError(f"{CHECKPOINTS_FILE}: the last line does not end with LF")
        rows = []
        for number, line in enumerate(data.split(b"\n")[:-1], start=1):
            row = _canonical_json(line + b"\n", f"{CHECKPOINTS_FILE} line {number}")
            if not isinstance(row, dict) or sorted(row) != sorted(CHECKPOINT_FIELDS):
                raise BundleError(f"{CHECKPOINTS_FILE} line {number}: members must be exactly "
                                  f"{', '.join(sorted(CHECKPOINT_FIELDS))}")
            for name, kind in CHECKPOINT_FIELDS.items():
                if type(row[name]) is not kind:
                    raise BundleError(f"{CHECKPOINTS_FILE} line {number}: field {name!r} is not {kind.__name__}")
            rows.append(row)
        return rows

    def entries(self) -> Iterator[tuple]:
        """Entry rows (ENTRY_COLUMNS order) with ciphertext and leaf hash as bytes; each line in its §10 form."""
        digest = hashlib.sha256()
        encode = LeafEncoder()
        try:
            f = (self.path / ENTRIES_FILE).open("rb")
        except FileNotFoundError as err:
            raise BundleError(f"{ENTRIES_FILE} is missing from the bundle") from err
        except OSError as err:
            raise BundleError(f"{ENTRIES_FILE}: cannot be read ({err.strerror})") from err
        with f:
            for number, line in enumerate(f, start=1):
                digest.update(line)
                yield _entry_row(line, number, encode)
        self.seen[ENTRIES_FILE] = digest.hexdigest()

    def check_manifest(self) -> None:
        """Name any file whose bytes differ from the manifest (after the signed checks have passed)."""
        for name in DATA_FILES:
            if name not in self.seen:
                self.read_bytes(name)
            if self.seen[name] != self.expected[name]:
                raise BundleError(f"{name}: SHA-256 {self.seen[name]} does not match the manifest's "
                                  f"{self.expected[name]} (file altered or corrupted)")


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
