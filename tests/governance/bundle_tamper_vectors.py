"""Tampered evidence bundles: one named attack each, and every line the verifier must fail with.

Like tests/governance/tamper_vectors.py for databases, but an attack on a bundle is an edit of
its zip members, so each case is code: `attack(members)` edits the files in place. Unless the
case is about the manifest, the attacker then recomputes the manifest's digests (anyone can),
so what catches the attack is a signature or a proof, not the unsigned manifest.

The good bundle is the complete export of `build_governed_run(rounds=3, nodes=4)`:

| seq | entries | checkpoint |
| --- | --- | --- |
| 0 | `ledger.created` | #1, tree size 1 |
| 1..4 | `node.registered` node-000..node-003 | #2, 5 |
| 5..8 | `consent.granted` | #3, 9 |
| 9 | `run.started` | |
| 10..16 | round 1: `round.selection`, 4 × `round.reply` (11..14), `round.aggregated`, `round.evaluated` | #4, 17 |
| 17..23 | round 2, the same | #5, 24 |
| 24 | `consent.withdrawn` (node-003) | #6, 25 |
| 25..30 | round 3 without node-003 | #7, 31 |
| 31 | `run.finished` | #8, 32 |
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from governance.verify.bundle import jcs_line
from governance.verify.leaf import leaf_bytes
from governance.verify.merkle import hash_leaf

Members = dict[str, bytes]


@dataclass(frozen=True)
class BundleTamperCase:
    name: str
    attack: Callable[[Members], None]
    want: tuple[str, ...]  # every stderr line, in order; `...` matches any non-empty text
    fix_manifest: bool = True


def read_members(bundle: Path) -> Members:
    with zipfile.ZipFile(bundle) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def write_members(bundle: Path, members: Members, fix_manifest: bool = True) -> None:
    """Write the members as a zip at `bundle`; with `fix_manifest`, the manifest lists every other file's digest."""
    members = dict(members)
    if fix_manifest:
        manifest = json.loads(members["manifest.json"])
        manifest["files"] = {name: hashlib.sha256(data).hexdigest() for name, data in members.items()
                             if name != "manifest.json"}
        members["manifest.json"] = jcs_line(manifest)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(members.items()):
            archive.writestr(name, data)
    bundle.write_bytes(buffer.getvalue())


def attacked_bundle(good: Path, case: BundleTamperCase, out: Path) -> Path:
    members = read_members(good)
    case.attack(members)
    write_members(out, members, case.fix_manifest)
    return out


def matches(want: tuple[str, ...], stderr: str) -> bool:
    """Whether stderr is exactly these lines (`...` matching any non-empty text)."""
    got = stderr.rstrip("\n").split("\n")
    return len(got) == len(want) and all(
        re.fullmatch(".+".join(re.escape(part) for part in line.split("...")), text) for line, text in zip(want, got))


# -- edits ---------------------------------------------------------------------------------------

def lines(members: Members, name: str) -> list[bytes]:
    return members[name].split(b"\n")[:-1]


def set_lines(members: Members, name: str, new: list[bytes]) -> None:
    members[name] = b"".join(line + b"\n" for line in new)


def line_of(members: Members, name: str, seq: int) -> int:
    """The index of the line about entry `seq` in entries.jsonl or proofs.jsonl."""
    return next(i for i, line in enumerate(lines(members, name)) if json.loads(line)["seq"] == seq)


def edit_entry(seq: int, recompute_leaf: bool, **fields: object) -> Callable[[Members], None]:
    def attack(members: Members) -> None:
        rows = lines(members, "entries.jsonl")
        at = line_of(members, "entries.jsonl", seq)
        row = {**json.loads(rows[at]), **fields}
        if recompute_leaf:
            leaf = hash_leaf(leaf_bytes(row["seq"], row["timestamp"], row["entry_type"], row["run_id"], row["round"],
                                        row["node_id"], row["model_hash"], row["config_hash"], row["key_id"],
                                        base64.b64decode(row["ciphertext"])))
            row["leaf_hash"] = base64.b64encode(leaf).decode()
        leaf_hash = row.pop("leaf_hash")
        rows[at] = jcs_line(row).rstrip(b"\n")[:-1] + b',"leaf_hash":"' + leaf_hash.encode() + b'"}'
        set_lines(members, "entries.jsonl", rows)
    return attack


def drop_entry(seq: int) -> Callable[[Members], None]:
    def attack(members: Members) -> None:
        for name in ("entries.jsonl", "proofs.jsonl"):
            rows = lines(members, name)
            del rows[line_of(members, name, seq)]
            set_lines(members, name, rows)
    return attack


def swap_proofs(a: int, b: int) -> Callable[[Members], None]:
    def attack(members: Members) -> None:
        rows = lines(members, "proofs.jsonl")
        i, j = line_of(members, "proofs.jsonl", a), line_of(members, "proofs.jsonl", b)
        first, second = json.loads(rows[i]), json.loads(rows[j])
        first["hashes"], second["hashes"] = second["hashes"], first["hashes"]
        rows[i], rows[j] = jcs_line(first).rstrip(b"\n"), jcs_line(second).rstrip(b"\n")
        set_lines(members, "proofs.jsonl", rows)
    return attack


def forge_checkpoint(cp_id: int) -> Callable[[Members], None]:
    """Checkpoint `cp_id` replaced by one of the same origin and size over another root, signed by another key."""
    def attack(members: Members) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from governance.ledger.checkpoint import sign_checkpoint
        from governance.verify.checkpoint import parse_checkpoint

        rows = lines(members, "checkpoints.jsonl")
        row = json.loads(rows[cp_id - 1])
        genuine = parse_checkpoint(row["note"])
        row["note"] = sign_checkpoint(genuine.origin, genuine.size, hashlib.sha256(b"forged").digest(), genuine.origin,
                                      Ed25519PrivateKey.generate())
        rows[cp_id - 1] = jcs_line(row).rstrip(b"\n")
        set_lines(members, "checkpoints.jsonl", rows)
    return attack


def drop_checkpoint(cp_id: int) -> Callable[[Members], None]:
    def attack(members: Members) -> None:
        rows = lines(members, "checkpoints.jsonl")
        del rows[cp_id - 1]
        set_lines(members, "checkpoints.jsonl", rows)
    return attack


def add_unsigned_entry(members: Members) -> None:
    """A 33rd entry, well formed, with a proof line claiming the tree of 32: no checkpoint covers it."""
    entries, proofs = lines(members, "entries.jsonl"), lines(members, "proofs.jsonl")
    entries.append(entries[-1].replace(b'"seq":31', b'"seq":32'))
    proofs.append(proofs[-1].replace(b'"seq":31', b'"seq":32'))
    set_lines(members, "entries.jsonl", entries)
    set_lines(members, "proofs.jsonl", proofs)
    edit_entry(32, recompute_leaf=True)(members)


def set_digest(name: str, digest: str) -> Callable[[Members], None]:
    def attack(members: Members) -> None:
        manifest = json.loads(members["manifest.json"])
        manifest["files"][name] = digest
        members["manifest.json"] = jcs_line(manifest)
    return attack


def withdraw_nothing(members: Members) -> None:
    """consent.json edited as an operator might wish: node-003 never withdrew."""
    consent = json.loads(members["consent.json"])
    for record in consent["records"]:
        record.update(withdrawn_at=None, withdrawn_seq=None, withdrawal_reason=None)
    members["consent.json"] = jcs_line(consent)


EMPTY = hashlib.sha256(b"").hexdigest()
NEWEST = "checkpoint #8's root (entry altered, or proof swapped)"

BUNDLE_TAMPER_CASES = [
    BundleTamperCase("edited-entry", edit_entry(12, True, node_id="node-999"),
                     (f"error: entry seq 12: its inclusion proof does not lead to {NEWEST}",)),
    BundleTamperCase("edited-entry-leaf-hash-kept", edit_entry(12, False, round=2),
                     ("error: entry seq 12: its fields do not hash to its leaf_hash (entry altered)",)),
    BundleTamperCase("dropped-entry", drop_entry(13),
                     ("error: entry seq 13 is missing (a complete bundle holds every entry up to tree size 32)",)),
    BundleTamperCase("swapped-proof", swap_proofs(11, 12),
                     (f"error: entry seq 11: its inclusion proof does not lead to {NEWEST}",
                      f"error: entry seq 12: its inclusion proof does not lead to {NEWEST}")),
    BundleTamperCase("forged-checkpoint", forge_checkpoint(5),
                     ("error: checkpoint #5: bad signature: no signature by a trusted key named 'fedgov.ledger/...'",)),
    BundleTamperCase("forged-newest-checkpoint", forge_checkpoint(8),
                     ("error: checkpoint #8: bad signature: no signature by a trusted key named 'fedgov.ledger/...'",
                      "error: inclusion proofs not checked: the newest checkpoint #8 did not verify")),
    BundleTamperCase("dropped-checkpoint", drop_checkpoint(5),
                     ("error: checkpoint #5 is missing (found #6 in its place)",)),
    BundleTamperCase("unsigned-entry-added", add_unsigned_entry,
                     ("error: entry seq 32 is not covered by the newest checkpoint #8 (tree size 32)",)),
    BundleTamperCase("edited-manifest", set_digest("entries.jsonl", EMPTY),
                     (f"error: entries.jsonl: SHA-256 ... does not match the manifest's {EMPTY} (file altered or "
                      "corrupted)",), fix_manifest=False),
    BundleTamperCase("edited-consent-manifest-kept", withdraw_nothing,
                     ("error: consent.json: SHA-256 ... does not match the manifest's ... (file altered or corrupted)",),
                     fix_manifest=False),
    BundleTamperCase("unlisted-file", lambda members: members.update({"notes.txt": b"trust me\n"}),
                     ("error: notes.txt is in the bundle but not listed in manifest.json",), fix_manifest=False),
]
