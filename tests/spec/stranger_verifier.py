#!/usr/bin/env python3
"""Independent verifier for the fedgov governance ledger, written from docs/ledger-format.md only.

Usage:
  stranger_verifier.py --db PATH.sqlite --trusted-keys FILE [--known-checkpoint FILE ...] [--receipts FILE ...]
  stranger_verifier.py --bundle FILE.zip [--trusted-keys FILE] [--known-checkpoint FILE ...]

Prints one line: `OK entries=N checkpoints=M root=<hex> signed_size=S` (with --receipts, then `receipts=K`)
(exit 0) or `FAIL <reason>` (exit 1).
Standard library plus `cryptography` (Ed25519 only). Section numbers refer to the spec.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import pathlib
import sqlite3
import sys
import tempfile
import zipfile
import zlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MAX_SAFE = 2**53 - 1
EM_DASH = "\u2014 "
LEAF_MEMBERS = ("ciphertext", "config_hash", "entry_type", "key_id", "model_hash",
                "node_id", "round", "run_id", "seq", "timestamp")
CHECKPOINT_MEMBERS = ("consistency_proof", "created", "id", "note", "tree_size")


class Fail(Exception):
    """Any verification failure; the message becomes the FAIL line."""


# ---------------------------------------------------------------- §1 JCS (RFC 8785), the subset used here
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _jcs_string(s: str) -> str:
    """Escape only what §1 lists; every other code point (non-ASCII, U+007F) stays literal."""
    return '"' + "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if c < " " else c) for c in s) + '"'


def _jcs(value) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):  # only integers occur in this format; a float has no canonical form here
        if abs(value) > MAX_SAFE:
            raise Fail(f"integer {value} outside +-(2^53-1)")
        return str(value)
    if isinstance(value, str):
        return _jcs_string(value)
    if isinstance(value, list):
        return "[" + ",".join(_jcs(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        return "{" + ",".join(_jcs_string(k) + ":" + _jcs(value[k]) for k in keys) + "}"
    raise Fail(f"value of type {type(value).__name__} has no canonical form here")


def jcs(value) -> bytes:
    try:
        return _jcs(value).encode("utf-8")
    except UnicodeEncodeError:
        raise Fail("a string holds a lone surrogate, which has no UTF-8 form")


def parse_json_strict(text: str):
    def no_duplicates(pairs):
        if len({k for k, _ in pairs}) != len(pairs):
            raise Fail("duplicate member")
        return dict(pairs)

    def bad_constant(c):
        raise Fail(f"non-finite number {c}")
    return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=bad_constant)


def b64_strict(s, what: str, length: int | None = None) -> bytes:
    """Standard padded base64 (RFC 4648 §4) in its one spelling (zero pad bits, no excess padding)."""
    try:
        raw = base64.b64decode(s.encode("ascii"), validate=True)
        ok = base64.b64encode(raw).decode("ascii") == s
    except Exception:
        ok = False
    if not ok:
        raise Fail(f"{what}: not standard padded base64")
    if length is not None and len(raw) != length:
        raise Fail(f"{what}: {len(raw)} bytes, expected {length}")
    return raw


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# ---------------------------------------------------------------- §3 Merkle tree (RFC 9162)
def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class Folder:
    """Incremental tree: a stack of complete subtree roots (the 'fold' of §6 step 3)."""

    def __init__(self):
        self.stack: list[tuple[int, bytes]] = []  # (level, hash), levels strictly decreasing
        self.size = 0

    def add(self, lh: bytes) -> None:
        level, h = 0, lh
        while self.stack and self.stack[-1][0] == level:
            h = node_hash(self.stack.pop()[1], h)
            level += 1
        self.stack.append((level, h))
        self.size += 1

    def root(self) -> bytes:
        if not self.stack:
            return hashlib.sha256(b"").digest()
        h = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            h = node_hash(left, h)
        return h


def verify_consistency(size1: int, size2: int, proof: list[bytes], root1: bytes, root2: bytes) -> bool:
    """RFC 9162 §2.1.4.2, plus the §3 rules for size1 = 0 and size1 = size2."""
    if size1 == 0 or size1 > size2 or any(len(p) != 32 for p in proof):
        return False  # §3: "A consistency proof from size 0 is rejected"
    if size1 == size2:
        return not proof and root1 == root2
    if not proof:
        return False
    path = [root1] + proof if size1 & (size1 - 1) == 0 else list(proof)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == root1 and sr == root2 and sn == 0


# ---------------------------------------------------------------- §5 trust file and signed notes
def signed_note_key_id(name: str, pub: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\x0a\x01" + pub).digest()[:4]


def is_key_name(name: str) -> bool:
    """§5: signed-note key names are non-empty and hold no space and no `+`."""
    return bool(name) and not any(c.isspace() or c == "+" for c in name)


def load_trusted_keys(path: str) -> list[tuple[str, bytes, Ed25519PublicKey]]:
    """§5 trust file: lines `<name>+<8 lower-case hex key id>+<base64(0x01 || key)>`; any bad line rejects all."""
    try:
        text = pathlib.Path(path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise Fail(f"trusted keys {path}: cannot read as UTF-8 ({e.__class__.__name__})")
    keys = []
    for n, line in enumerate(text.split("\n"), 1):
        line = line.strip(" \t\r")
        if not line or line.startswith("#"):
            continue
        parts = line.split("+", 2)  # the first two `+` only: the base64 may hold more
        if len(parts) != 3 or not is_key_name(parts[0]):
            raise Fail(f"trusted keys {path} line {n}: not <name>+<key id>+<key>")
        name, hexid, b64 = parts
        raw = b64_strict(b64, f"trusted keys {path} line {n}: key", 33)
        if raw[0] != 1:
            raise Fail(f"trusted keys {path} line {n}: key type is not Ed25519 (0x01)")
        kid = signed_note_key_id(name, raw[1:])
        if hexid != kid.hex():
            raise Fail(f"trusted keys {path} line {n}: key id {hexid!r} is not {kid.hex()}")
        keys.append((name, kid, Ed25519PublicKey.from_public_bytes(raw[1:])))
    if not keys:
        raise Fail(f"trusted keys {path}: no key")
    return keys


def parse_signature_line(line: str, what: str) -> tuple[str, bytes]:
    """`— <name> <base64(4-byte key id || signature)>`; the name runs to the last space."""
    name, space, b64 = line[len(EM_DASH):].rpartition(" ")
    if not line.startswith(EM_DASH) or not space or not is_key_name(name):
        raise Fail(f"{what}: malformed note: bad signature line {line!r}")
    raw = b64_strict(b64, f"{what}: malformed note: signature line of {name}")
    if len(raw) < 5:
        raise Fail(f"{what}: malformed note: signature line of {name} holds no signature")
    return name, raw


def parse_signed_note(note, what: str):
    """§5 grammar. Returns (origin, size, root, signed body bytes, [(name, raw signature)])."""
    if not isinstance(note, str):
        raise Fail(f"{what}: note is not text")
    body, blank, sig_text = note.partition("\n\n")
    if not blank or not sig_text.endswith("\n"):
        raise Fail(f"{what}: malformed note: no blank line, signature line or final newline")
    lines = body.split("\n")  # origin, size, root, then extension lines (signed, content ignored)
    if len(lines) < 3:
        raise Fail(f"{what}: malformed note: fewer than three body lines")
    origin, size_s, root_s = lines[:3]
    if not (size_s.isascii() and size_s.isdigit()) or size_s.startswith("0"):
        raise Fail(f"{what}: tree size {size_s!r} is not a decimal number of at least 1")
    root = b64_strict(root_s, f"{what}: root hash", 32)
    sigs = [parse_signature_line(sl, what) for sl in sig_text[:-1].split("\n")]
    return origin, int(size_s), root, (body + "\n").encode("utf-8"), sigs


def verify_signed_note(note, trusted, what: str) -> tuple[str, int, bytes]:
    """Every line by a trusted (name, key id) must verify; at least one must be by a key named the origin."""
    origin, size, root, body, sigs = parse_signed_note(note, what)
    by_origin = 0
    for name, raw in sigs:
        for kname, kid, pub in trusted:
            if (kname, kid) != (name, raw[:4]):
                continue  # not a trusted key's line (a witness's cosignature, for instance)
            try:
                if len(raw) != 4 + 64:
                    raise InvalidSignature
                pub.verify(raw[4:], body)
            except InvalidSignature:
                raise Fail(f"{what}: signature by trusted key {name} does not verify")
            by_origin += name == origin
    if not by_origin:
        raise Fail(f"{what}: no valid signature by a trusted key named {origin!r}")
    return origin, size, root


def read_consistency_proof(text, first: bool, what: str) -> list[bytes]:
    """§5: exactly `[]` for the first checkpoint, else `["<b64>", "<b64>"]` (comma, space)."""
    if text == "[]":
        return []
    if first or not isinstance(text, str) or len(text) < 4 or text[:2] != '["' or text[-2:] != '"]':
        need = "exactly [] for the first checkpoint" if first else 'its one text form ["<b64>", "<b64>"]'
        raise Fail(f"{what}: consistency_proof is not {need}")
    return [b64_strict(h, f"{what}: consistency_proof hash", 32) for h in text[2:-2].split('", "')]


# ---------------------------------------------------------------- §6 verification
def step0_identity(meta: dict, trusted, known_files: list[str]):
    ledger_id, origin = meta.get("ledger_id"), meta.get("origin")
    if not isinstance(ledger_id, str) or not isinstance(origin, str):
        raise Fail("meta lacks ledger_id or origin")
    if origin != f"fedgov.ledger/{ledger_id}":
        raise Fail(f"origin {origin!r} is not 'fedgov.ledger/{ledger_id}', which its ledger_id requires (meta edited)")
    known = []
    for path in known_files:  # read as bytes: no newline translation
        what = f"known checkpoint {path}"
        try:
            text = pathlib.Path(path).read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise Fail(f"{what}: cannot read as UTF-8 ({e.__class__.__name__})")
        note_origin, size, root = verify_signed_note(text, trusted, what)
        if note_origin != origin:
            raise Fail(f"{what}: origin {note_origin!r} is not this ledger's {origin!r}")
        known.append((what, size, root))
    return origin, known


def step1_something_signed(checkpoints: list[dict]) -> None:
    if not checkpoints:
        raise Fail("no signed checkpoint: nothing in this ledger is covered by a signature")


def step2_checkpoints(checkpoints: list[dict], origin: str, trusted) -> list[tuple[str, int, bytes]]:
    out, prev = [], None
    for pos, cp in enumerate(checkpoints, 1):
        what = f"checkpoint {cp['id']}"
        if cp["id"] != pos:
            raise Fail(f"checkpoint ids not gapless: expected {pos}, found {cp['id']!r}")
        note_origin, size, root = verify_signed_note(cp["note"], trusted, what)
        if note_origin != origin:
            raise Fail(f"{what}: origin {note_origin!r} is not this ledger's {origin!r}")
        if size != cp["tree_size"]:
            raise Fail(f"{what}: signed size {size} differs from tree_size {cp['tree_size']!r}")
        proof = read_consistency_proof(cp["consistency_proof"], prev is None, what)
        if prev is not None:
            if size < prev[0]:
                raise Fail(f"{what}: tree size {size} smaller than the previous {prev[0]}")
            if not verify_consistency(prev[0], size, proof, prev[1], root):
                raise Fail(f"{what}: consistency proof from size {prev[0]} does not verify")
        prev = (size, root)
        out.append((what, size, root))
    return out


def entry_leaf_bytes(e: dict) -> bytes:
    """§2: JCS of exactly the ten members; `round` integer or null, `seq` integer, the rest strings."""
    for m in LEAF_MEMBERS:
        ok = {"round": e[m] is None or is_int(e[m]), "seq": is_int(e[m])}.get(m, isinstance(e[m], str))
        if not ok:
            raise Fail(f"entry seq {e.get('seq')!r}: member {m} has the wrong type")
    return jcs({m: e[m] for m in LEAF_MEMBERS})


def step3_entries(entries: list[dict], signed: list[tuple[str, int, bytes]]):
    """Fold the leaves; at each signed size compare roots. Returns (leaf hashes, root of all entries)."""
    by_size: dict[int, list[tuple[str, bytes]]] = {}
    for what, size, root in signed:
        by_size.setdefault(size, []).append((what, root))
    folder, leaves = Folder(), []
    for pos, e in enumerate(entries):
        if e["seq"] != pos:
            raise Fail(f"entry seq {pos} is missing")
        lh = leaf_hash(entry_leaf_bytes(e))
        if lh != e["leaf_hash"]:
            raise Fail(f"entry seq {pos} was altered: its leaf hash differs from the stored one")
        folder.add(lh)
        leaves.append(lh)
        for what, root in by_size.get(folder.size, []):
            if folder.root() != root:
                raise Fail(f"{what}: root at tree size {folder.size} does not match the entries")
    return leaves, folder.root()


def step4_nothing_cut(n: int, cps, known) -> None:
    for what, size, _ in cps:
        if size > n:
            raise Fail(f"{what} covers {size} entries but the ledger holds only {n}: truncated tail")
    for what, size, _ in known:
        if size > n:
            raise Fail(f"{what} covers {size} entries but the ledger holds only {n}: "
                       "the ledger was rolled back or truncated")


def step5_cache(leaves: list[bytes], stored: dict[tuple[int, int], bytes], min_level: int) -> None:
    """Expected: for every level L >= min_level and idx < n >> L, the hash of leaves [idx*2^L, (idx+1)*2^L)."""
    expected: dict[tuple[int, int], bytes] = {}
    level, hashes = 0, leaves
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes) - 1, 2)]
        level += 1  # len(hashes) == n >> level
        if level >= min_level:
            expected.update(((level, idx), h) for idx, h in enumerate(hashes))
    natural = lambda k: tuple((0, x) if is_int(x) else (1, repr(x)) for x in k)  # rows may hold odd types
    altered = [k for k in expected if k in stored and stored[k] != expected[k]]
    missing = [k for k in expected if k not in stored]
    extra = [k for k in stored if k not in expected]
    if altered or missing or extra:
        where = ", ".join(f"level {lv} idx {i}" for lv, i in sorted(altered + missing + extra, key=natural)[:5])
        raise Fail(f"{len(altered)} altered, {len(missing)} missing, {len(extra)} extra "
                   f"cached tree node(s) differ ({where})")


def verify(meta, entries, checkpoints, trusted, known_files, cache=None, receipts=None) -> str:
    origin, known = step0_identity(meta, trusted, known_files)
    step1_something_signed(checkpoints)
    cps = step2_checkpoints(checkpoints, origin, trusted)
    leaves, root = step3_entries(entries, cps + known)
    step4_nothing_cut(len(entries), cps, known)
    if cache is not None:
        step5_cache(leaves, *cache)
    signed_size = max(size for _, size, _ in cps + known)  # step 6; the root is over all N entries
    line = f"OK entries={len(entries)} checkpoints={len(cps)} root={root.hex()} signed_size={signed_size}"
    if receipts is not None:
        files, identity_rows = receipts
        keys = [k for name, _kid, k in trusted if name == origin]
        identities = registered_identities(identity_rows, meta["ledger_id"], keys)
        registrations = sorted(e["seq"] for e in entries if e["entry_type"] == "identity.registered")
        if sorted(seq for *_, seq in identity_rows) != registrations:  # §4.2 rule 2: one for one by seq
            raise Fail("fedgov_identities is not one for one with the identity.registered entries")
        line += f" receipts={sum(check_receipts(f, meta['ledger_id'], identities, leaves) for f in files)}"
    return line


# ---------------------------------------------------------------- §4.2, §8.1, §8.2 receipts of an identity
RECEIPT_MEMBERS = ("count", "first", "leaves", "ledger_id", "purpose", "signature", "writer")


def registered_identities(rows, ledger_id: str, ledger_keys) -> dict[str, bytes]:
    """§4.2: fingerprint -> Ed25519 public key of each registered identity whose row the ledger's key signed."""
    found = {}
    for fingerprint, document, signature, seq in rows:
        doc = parse_json_strict(document) if isinstance(document, str) else None
        if not isinstance(doc, dict) or not is_int(seq) or not isinstance(signature, bytes):
            raise Fail(f"registered identity {fingerprint!r}: malformed row")
        public = {k: doc.get(k) for k in ("ed25519", "name", "node", "role", "x25519")}
        if hashlib.sha256(jcs(public)).hexdigest()[:32] != fingerprint or doc.get("fingerprint") != fingerprint:
            raise Fail(f"registered identity {fingerprint!r}: fingerprint is not its document's")
        message = jcs({"identity": doc, "ledger_id": ledger_id, "purpose": "fedgov-identity-registration-v2",
                       "seq": seq})
        if not any(_verifies(k, signature, message) for k in ledger_keys):
            raise Fail(f"registered identity {fingerprint}: not signed by the ledger's key")
        found[fingerprint] = b64_strict(public["ed25519"], f"identity {fingerprint} ed25519", 32)
    return found


def _verifies(key, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
        return True
    except InvalidSignature:
        return False


def check_receipts(path: str, ledger_id: str, identities: dict[str, bytes], leaves: list[bytes]) -> int:
    """§8.2: every line a receipt; each of this ledger's signed by a registered identity and matching the
    entries at its seqs. Returns how many were of this ledger."""
    try:
        raw = pathlib.Path(path).read_bytes()
    except OSError as e:
        raise Fail(f"receipts {path}: cannot read ({e.__class__.__name__})")
    receipts = []
    for n, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            r = parse_json_strict(line.decode("utf-8")) if len(line) <= 4096 else None
        except (UnicodeDecodeError, ValueError, RecursionError):
            r = None
        ok = isinstance(r, dict) and sorted(r) == list(RECEIPT_MEMBERS) and is_int(r["first"]) and \
            is_int(r["count"]) and r["first"] >= 0 and r["count"] >= 1 and r["purpose"] == "fedgov-batch-v1" and \
            isinstance(r["leaves"], str) and len(r["leaves"]) == 64 and set(r["leaves"]) <= set("0123456789abcdef") \
            and all(isinstance(r[k], str) and r[k] for k in ("writer", "ledger_id", "signature"))
        if not ok:
            raise Fail(f"receipts {path} line {n}: not a receipt")
        r["signature"] = b64_strict(r["signature"], f"receipts {path} line {n}: signature", 64)
        receipts.append(r)
    mine = [r for r in receipts if r["ledger_id"] == ledger_id]
    if not mine:
        raise Fail(f"receipts {path}: no receipt of this ledger")
    for r in mine:
        key = identities.get(r["writer"])
        if key is None:
            raise Fail(f"receipt of seq {r['first']}: writer {r['writer']!r} is not a registered identity")
        message = jcs({k: r[k] for k in RECEIPT_MEMBERS if k != "signature"})
        if not _verifies(Ed25519PublicKey.from_public_bytes(key), r["signature"], message):
            raise Fail(f"receipt of seq {r['first']}: signature does not verify")
        end = r["first"] + r["count"]
        if end > len(leaves):
            raise Fail(f"receipt of seq {r['first']}: the ledger holds only {len(leaves)} entries")
        if hashlib.sha256(b"".join(leaves[r["first"]:end])).hexdigest() != r["leaves"]:
            raise Fail(f"receipt of seq {r['first']}: the entries there are not the ones its identity appended")
    return len(mine)


# ---------------------------------------------------------------- §7 database input
def read_db(path: str):
    if not os.path.isfile(path):
        raise Fail(f"database {path}: no such file")
    con = sqlite3.connect(pathlib.Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return read_tables(con)
    except sqlite3.Error as e:
        raise Fail(f"database {path}: not readable as a fedgov ledger ({e.__class__.__name__}: {ascii(str(e))[:80]})")
    finally:
        con.close()


def read_tables(con):
    meta = dict(con.execute("SELECT key, value FROM fedgov_meta").fetchall())
    version = meta.get("schema_version")
    if version not in ("1", "2"):
        raise Fail(f"schema_version {version!r} is not 1 or 2")
    entries = []
    for row in con.execute(f"SELECT {', '.join(LEAF_MEMBERS)}, leaf_hash FROM fedgov_entries ORDER BY seq"):
        e = dict(zip(LEAF_MEMBERS + ("leaf_hash",), row))
        if not isinstance(e["ciphertext"], bytes):
            raise Fail(f"entry seq {e['seq']!r}: ciphertext is not a BLOB")
        e["ciphertext"] = base64.b64encode(e["ciphertext"]).decode("ascii")
        entries.append(e)
    checkpoints = [dict(zip(("id", "tree_size", "note", "consistency_proof"), r)) for r in
                   con.execute("SELECT id, tree_size, note, consistency_proof FROM fedgov_checkpoints ORDER BY id")]
    stored = {(lv, idx): h for lv, idx, h in con.execute("SELECT level, idx, hash FROM fedgov_tree_nodes")}
    return meta, entries, checkpoints, (stored, 4 if version == "2" else 1)


def read_identity_rows(path: str) -> list[tuple]:
    """§7 `fedgov_identities` (absent until the first identity is registered)."""
    con = sqlite3.connect(pathlib.Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    try:
        if not con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'fedgov_identities'").fetchone():
            return []
        return con.execute("SELECT fingerprint, document, signature, seq FROM fedgov_identities ORDER BY seq").fetchall()
    except sqlite3.Error as e:
        raise Fail(f"database {path}: fedgov_identities not readable ({e.__class__.__name__})")
    finally:
        con.close()


# ---------------------------------------------------------------- §10 evidence bundle (version 3) input
def json_lines(raw: bytes, fname: str) -> list[tuple[str, dict]]:
    """Each line (LF-terminated, UTF-8) parsed strictly as one JSON object; the byte form is checked by callers."""
    try:
        if raw and not raw.endswith(b"\n"):
            raise ValueError("does not end with LF")
        lines = raw.decode("utf-8").split("\n")[:-1]
    except ValueError as e:
        raise Fail(f"{fname}: {e}")
    out = []
    for n, line in enumerate(lines, 1):
        try:
            obj = parse_json_strict(line)
        except (Fail, ValueError, RecursionError) as e:
            raise Fail(f"{fname} line {n}: not JSON ({e})")
        if not isinstance(obj, dict):
            raise Fail(f"{fname} line {n}: not an object")
        out.append((line, obj))
    return out


def require_byte_form(line: str, expected: bytes, fname: str, n: int) -> None:
    if expected != line.encode("utf-8"):
        raise Fail(f"{fname} line {n}: not its one byte form (re-encoded, it differs)")


def read_jcs_file(raw: bytes, fname: str) -> dict:
    """meta.json, manifest.json: exactly one line, JCS+LF."""
    lines = json_lines(raw, fname)
    if len(lines) != 1:
        raise Fail(f"{fname}: not exactly one line")
    require_byte_form(lines[0][0], jcs(lines[0][1]), fname, 1)
    return lines[0][1]


def read_bundle_entry(line: str, obj: dict, n: int) -> dict:
    """The ten leaf members in JCS, then `,"leaf_hash":"<b64>"` before the closing brace."""
    if set(obj) != set(LEAF_MEMBERS) | {"leaf_hash"}:
        raise Fail(f"entries.jsonl line {n}: members are not exactly the eleven of §10")
    require_byte_form(line, entry_leaf_bytes(obj)[:-1] + b',"leaf_hash":' + jcs(obj["leaf_hash"]) + b"}",
                      "entries.jsonl", n)
    b64_strict(obj["ciphertext"], f"entries.jsonl line {n}: ciphertext")
    return {**obj, "leaf_hash": b64_strict(obj["leaf_hash"], f"entries.jsonl line {n}: leaf_hash", 32)}


def read_bundle_checkpoint(line: str, obj: dict, n: int) -> dict:
    if set(obj) != set(CHECKPOINT_MEMBERS):
        raise Fail(f"checkpoints.jsonl line {n}: members are not exactly the five of §10")
    if not (all(isinstance(obj[k], str) for k in ("consistency_proof", "created", "note"))
            and is_int(obj["id"]) and is_int(obj["tree_size"])):
        raise Fail(f"checkpoints.jsonl line {n}: a member has the wrong type")
    require_byte_form(line, jcs(obj), "checkpoints.jsonl", n)
    return obj


def verify_inclusion(index: int, size: int, leaf: bytes, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if not 0 <= index < size or any(len(p) != 32 for p in path):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


REQUIRED = ("manifest.json", "entries.jsonl", "proofs.jsonl", "checkpoints.jsonl", "meta.json", "trusted_keys",
            "consent.json", "lineage.prov.json")


def read_zip(path: str) -> dict[str, bytes]:
    """§10.2: members by name, each once, no directories; a directory holding manifest.json is version 2."""
    if os.path.isdir(path):
        raise Fail("a directory: version 2 bundles are not read, export again")
    try:
        with zipfile.ZipFile(path) as z:
            out = {}
            for info in z.infolist():
                if info.filename in out or info.filename.endswith("/"):
                    raise Fail(f"zip member {info.filename!r} twice, or a directory")
                out[info.filename] = z.read(info)
            return out
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, zlib.error) as e:
        raise Fail(f"not a readable zip ({e.__class__.__name__})")


def read_proof(line: str, obj: dict, n: int) -> dict:
    if set(obj) != {"hashes", "seq", "tree_size"} or not is_int(obj["seq"]) or not is_int(obj["tree_size"]) \
            or not isinstance(obj["hashes"], list) or not all(isinstance(h, str) for h in obj["hashes"]):
        raise Fail(f"proofs.jsonl line {n}: not hashes, seq, tree_size")
    require_byte_form(line, jcs(obj), "proofs.jsonl", n)
    return {**obj, "hashes": [b64_strict(h, f"proofs.jsonl line {n}: hash", 32) for h in obj["hashes"]]}


def verify_bundle(path: str, trusted_keys: str | None, known_files: list[str]) -> str:
    """§10.4, stopping at the first failure (fedgov lists them all; the verdict is what must agree)."""
    files = read_zip(path)
    if "manifest.json" not in files:
        raise Fail("no manifest.json")
    manifest = read_jcs_file(files.pop("manifest.json"), "manifest.json")
    if manifest.get("format") != "fedgov-evidence-bundle":
        raise Fail("manifest.json: format is not 'fedgov-evidence-bundle'")
    if manifest.get("version") != 3:
        raise Fail(f"manifest.json: bundle version {manifest.get('version')!r} is not 3: export the ledger again")
    listed, sel = manifest.get("files"), manifest.get("selection")
    if (set(manifest) != {"files", "format", "selection", "version"} or not isinstance(listed, dict)
            or not all(isinstance(v, str) and len(v) == 64 and set(v) <= set("0123456789abcdef")
                       for v in listed.values())
            or not isinstance(sel, dict) or set(sel) != {"run", "since", "until"}
            or not all(v is None or isinstance(v, str) for v in sel.values())):
        raise Fail("manifest.json: not files, format, selection, version as §10.3 says")
    if set(listed) != set(files) or not set(REQUIRED[1:]) <= set(listed):
        raise Fail("manifest.json does not list exactly the zip's other members, the required ones among them")
    for name in sorted(listed):
        if hashlib.sha256(files[name]).hexdigest() != listed[name]:
            raise Fail(f"manifest.json: SHA-256 of {name} does not match")
    meta = read_jcs_file(files["meta.json"], "meta.json")
    if not all(isinstance(v, str) for v in meta.values()):
        raise Fail("meta.json: a member is not a string")
    if trusted_keys:
        trusted = load_trusted_keys(trusted_keys)
    else:
        with tempfile.NamedTemporaryFile() as f:
            f.write(files["trusted_keys"])
            f.flush()
            trusted = load_trusted_keys(f.name)
    cps = [read_bundle_checkpoint(line, obj, n)
           for n, (line, obj) in enumerate(json_lines(files["checkpoints.jsonl"], "checkpoints.jsonl"), 1)]
    entries = [read_bundle_entry(line, obj, n)
               for n, (line, obj) in enumerate(json_lines(files["entries.jsonl"], "entries.jsonl"), 1)]
    proofs = [read_proof(line, obj, n)
              for n, (line, obj) in enumerate(json_lines(files["proofs.jsonl"], "proofs.jsonl"), 1)]
    for name in ("consent.json", "lineage.prov.json"):
        read_jcs_file(files[name], name)
    origin, known = step0_identity(meta, trusted, known_files)
    if known and not trusted_keys:  # a kept note pins its signer among the shipped keys
        trusted = [k for k in trusted if all(_signs(k, f) for f in known_files)]
    step1_something_signed(cps)
    signed = step2_checkpoints(cps, origin, trusted)
    _, size, root = signed[-1]
    for what, k_size, k_root in known:
        if not any(s == k_size and r == k_root for _, s, r in signed):
            raise Fail(f"{what} is not one of the bundle's checkpoints")
    if len(proofs) != len(entries) or not entries:
        raise Fail("proofs.jsonl and entries.jsonl differ in length, or no entry")
    previous = -1
    for n, (e, p) in enumerate(zip(entries, proofs), 1):
        if e["seq"] <= previous:
            raise Fail(f"entries.jsonl line {n}: seq not increasing")
        previous = e["seq"]
        if (sel["run"] is not None and e["run_id"] != sel["run"]) \
                or (sel["since"] is not None and e["timestamp"] < sel["since"]) \
                or (sel["until"] is not None and e["timestamp"] >= sel["until"]):
            raise Fail(f"entry seq {e['seq']} is outside the selection")
        lh = leaf_hash(entry_leaf_bytes(e))
        if lh != e["leaf_hash"]:
            raise Fail(f"entry seq {e['seq']} was altered: its leaf hash differs")
        if e["seq"] >= size or (p["seq"], p["tree_size"]) != (e["seq"], size):
            raise Fail(f"entry seq {e['seq']}: not covered, or its proof is another's")
        if not verify_inclusion(e["seq"], size, lh, p["hashes"], root):
            raise Fail(f"entry seq {e['seq']}: inclusion proof fails")
    if all(v is None for v in sel.values()):  # complete: 0..S-1, and the rebuilt tree gives every signed root
        if [e["seq"] for e in entries] != list(range(size)):
            raise Fail(f"a complete bundle must hold seq 0..{size - 1}")
        step3_entries(entries, signed)
    return f"OK entries={len(entries)} checkpoints={len(cps)} root={root.hex()} signed_size={size}"


def _signs(key, note_path: str) -> bool:
    try:
        verify_signed_note(pathlib.Path(note_path).read_bytes().decode("utf-8"), [key], note_path)
        return True
    except Fail:
        return False


# ---------------------------------------------------------------- command line
class _Args(argparse.ArgumentParser):
    def error(self, message):  # one FAIL line on stdout, nothing on stderr
        raise Fail(f"bad command line: {message}")


def main(argv=None) -> int:
    ap = _Args(add_help=False)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--db")
    src.add_argument("--bundle")
    ap.add_argument("--trusted-keys")
    ap.add_argument("--known-checkpoint", action="append", default=[])
    ap.add_argument("--receipts", action="append", default=[])
    try:
        args = ap.parse_args(argv)
        if args.db is not None:
            if not args.trusted_keys:
                raise Fail("--db needs --trusted-keys")
            trusted = load_trusted_keys(args.trusted_keys)
            meta, entries, cps, cache = read_db(args.db)
            receipts = (args.receipts, read_identity_rows(args.db)) if args.receipts else None
            line = verify(meta, entries, cps, trusted, args.known_checkpoint, cache, receipts)
        else:
            if args.receipts:
                raise Fail("--receipts checks a database, not a bundle")
            line = verify_bundle(args.bundle, args.trusted_keys, args.known_checkpoint)
    except Fail as f:
        print("FAIL " + " ".join(str(f).split()))
        return 1
    except Exception as e:  # never a traceback
        print(f"FAIL unexpected {e.__class__.__name__}: {ascii(str(e))[:200]}")
        return 1
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
