"""Verifying an evidence bundle (docs/ledger-format.md §10.5), reporting every failure, not just the first.

The order: the container and manifest (fatal), every file's digest, every file's byte form
(fatal), identity and trust, each checkpoint and each consecutive pair, known checkpoints,
each entry with its inclusion proof, and for a complete bundle every seq and the rebuilt tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from governance.verify.bundle import CONSENT_FILE, LINEAGE_FILE, TRUST_FILE, Bundle, BundleError, BundleFailures
from governance.verify.checkpoint import Checkpoint, CheckpointError, VerifierKey, parse_trusted_keys, verify_trusted
from governance.verify.errors import VerificationError
from governance.verify.inputs import load_known_checkpoint
from governance.verify.leaf import LeafEncoder
from governance.verify.merkle import Frontier, ProofError, verify_inclusion
from governance.verify.rows import NO_CHECKPOINT, KnownCheckpoint, check_consistent, checkpoint_row, ledger_origin


@dataclass(frozen=True)
class BundleReport:
    """What a bundle that verified holds."""

    entries: int
    checkpoints: int
    tree_size: int  # the newest checkpoint's: every entry is proved into this tree
    root_hex: str
    selection: dict[str, str | None]
    known: tuple[int, ...] = ()

    def lines(self) -> list[str]:
        """The success output: one line, and a second for a filtered bundle."""
        out = [f"verified: {self.entries} entries, {self.checkpoints} checkpoints, tree size {self.tree_size}, "
               f"root {self.root_hex}"]
        chosen = ", ".join(f"{key} {value}" for key, value in self.selection.items() if value is not None)
        if chosen:
            out.append(f"selection: {chosen} (each entry is proved to be in the ledger; a filtered bundle cannot show "
                       "that no entry of the selection was left out)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"verified": True, "entries": self.entries, "checkpoints": self.checkpoints,
                "tree_size": self.tree_size, "signed_size": self.tree_size, "root": self.root_hex,
                "selection": self.selection, "complete": not any(self.selection.values()),
                "known_checkpoints": list(self.known)}


def verify_bundle(path: Path, trusted: Sequence[VerifierKey] | None = None,
                  known_files: Sequence[Path] = ()) -> BundleReport:
    """Verify a bundle file; BundleFailures lists every failure. Trusts `trusted`, else the bundle's trusted_keys
    (worth only the channel it came by, unless a known checkpoint pins the signer)."""
    bundle = Bundle(path)
    failures = bundle.digest_failures()
    try:
        meta = bundle.meta()
        keys = list(trusted) if trusted else _shipped_keys(bundle)
        rows, entries, proofs = bundle.checkpoints(), bundle.entries(), bundle.proofs()
        for name in (CONSENT_FILE, LINEAGE_FILE):  # their byte form only: nothing here interprets them
            bundle.json_object(name)
        origin = ledger_origin(meta, "bundle file meta.json")
        known = [load_known_checkpoint(f, keys) for f in known_files]  # one not signed by a trusted key: exit 2
        keys = keys if trusted or not known else signers_of(known, keys)
    except VerificationError as err:  # a file not in its form: nothing that depends on it can be checked
        raise BundleFailures([*failures, str(err)]) from err
    valid = _checkpoints(rows, keys, origin, failures)
    head = valid.get(rows[-1]["id"]) if rows else None
    if rows and head is None:
        failures.append(f"inclusion proofs not checked: the newest checkpoint #{rows[-1]['id']} did not verify")
    _known(known, valid, rows, failures)
    leaves = _entries(entries, proofs, head, rows, bundle.selection, failures)
    if not entries:
        failures.append("the bundle holds no entry")
    if bundle.complete and head is not None:
        _complete(entries, leaves, head, valid, failures)
    if failures:
        raise BundleFailures(failures)
    assert head is not None
    return BundleReport(len(entries), len(rows), head.size, head.root.hex(), bundle.selection,
                        tuple(sorted(k.checkpoint.size for k in known)))


def _shipped_keys(bundle: Bundle) -> list[VerifierKey]:
    try:
        return parse_trusted_keys(bundle.text(TRUST_FILE), f"bundle file {TRUST_FILE}")
    except CheckpointError as err:
        raise BundleError(f"{TRUST_FILE}: {err}") from err


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


def _checkpoints(rows: list[dict[str, Any]], keys: Sequence[VerifierKey], origin: str,
                 failures: list[str]) -> dict[int, Checkpoint]:
    """Ids 1..M, each checkpoint on its own, then each consecutive pair that both passed; the ones that passed."""
    if not rows:
        failures.append(NO_CHECKPOINT)
    valid: dict[int, Checkpoint] = {}
    proofs: dict[int, list[bytes]] = {}
    gap = next((at for at, row in enumerate(rows, start=1) if row["id"] != at), None)
    if gap is not None:
        failures.append(f"checkpoint #{gap} is missing (found #{rows[gap - 1]['id']} in its place)")
    for row in rows:
        try:
            valid[row["id"]], proofs[row["id"]] = checkpoint_row(row, keys, origin)
        except VerificationError as err:
            failures.append(str(err))
    for cp_id, cp in valid.items():
        try:
            if cp_id == 1 and proofs[cp_id]:
                raise VerificationError("checkpoint #1: the first checkpoint's consistency_proof must be []")
            if cp_id > 1 and cp_id - 1 in valid:
                check_consistent(f"checkpoint #{cp_id}", cp_id - 1, valid[cp_id - 1], cp, proofs[cp_id])
        except VerificationError as err:
            failures.append(str(err))
    return valid


def _known(known: Sequence[KnownCheckpoint], valid: dict[int, Checkpoint], rows: list[dict[str, Any]],
           failures: list[str]) -> None:
    """A note the verifier kept must be one of the bundle's checkpoints: same size, same root."""
    newest = rows[-1]["tree_size"] if rows else 0
    by_size = {cp.size: (cp_id, cp) for cp_id, cp in valid.items()}
    for item in known:
        size, root = item.checkpoint.size, item.checkpoint.root
        if size > newest:
            failures.append(f"known checkpoint {item.source} covers {size} entries but the bundle's newest checkpoint "
                            f"covers only {newest}: the ledger was rolled back or truncated")
        elif size not in by_size:
            failures.append(f"known checkpoint {item.source} (tree size {size}) is not among the bundle's checkpoints")
        elif by_size[size][1].root != root:
            failures.append(f"known checkpoint {item.source} (tree size {size}): signed root {root.hex()} does not "
                            f"match checkpoint #{by_size[size][0]}'s root {by_size[size][1].root.hex()} (history "
                            "rewritten)")


def _entries(entries: list[tuple], proofs: list[tuple[int, int, list[bytes]]], head: Checkpoint | None,
             rows: list[dict[str, Any]], selection: dict[str, str | None], failures: list[str]) -> dict[int, bytes]:
    """Each entry: in seq order, covered, selected, its leaf hash, its inclusion proof. Returns the good leaves."""
    if len(proofs) != len(entries):
        failures.append(f"proofs.jsonl has {len(proofs)} lines and entries.jsonl {len(entries)}: one inclusion proof "
                        "per entry, line for line")
    encode, sha, leaves, previous = LeafEncoder(), hashlib.sha256, {}, -1
    for number, (row, (p_seq, p_size, hashes)) in enumerate(zip(entries, proofs), start=1):
        seq = row[0]
        if seq <= previous:
            failures.append(f"entries.jsonl line {number}: entry seq {seq} does not follow seq {previous} (entries "
                            "are in increasing seq order)")
            continue
        previous = seq
        outside = _outside(row, selection)
        if outside:
            failures.append(f"entry seq {seq} is outside the bundle's selection ({outside})")
        try:
            leaf = sha(b"\x00" + encode(seq, row[2], row[1], row[3], row[4], row[5], row[6], row[7], row[8],
                                        row[9])).digest()
        except (TypeError, ValueError) as err:
            failures.append(f"entry seq {seq}: malformed row ({err})")
            continue
        if leaf != row[10]:
            failures.append(f"entry seq {seq}: its fields do not hash to its leaf_hash (entry altered)")
        elif head is None:
            continue
        elif seq >= head.size:
            failures.append(f"entry seq {seq} is not covered by the newest checkpoint #{rows[-1]['id']} (tree size "
                            f"{head.size})")
        elif (p_seq, p_size) != (seq, head.size):
            failures.append(f"proofs.jsonl line {number}: proves seq {p_seq} in a tree of size {p_size}, not entry "
                            f"seq {seq} in the newest checkpoint's tree of size {head.size}")
        else:
            try:
                verify_inclusion(seq, head.size, leaf, hashes, head.root)
            except ProofError:
                failures.append(f"entry seq {seq}: its inclusion proof does not lead to checkpoint "
                                f"#{rows[-1]['id']}'s root (entry altered, or proof swapped)")
                continue
            leaves[seq] = leaf
    return leaves


def _outside(row: tuple, selection: dict[str, str | None]) -> str:
    """Why an entry does not match the manifest's selection ('' when it does)."""
    run, since, until = selection["run"], selection["since"], selection["until"]
    if run is not None and row[3] != run:
        return f"run_id {row[3]!r}, not {run!r}"
    if since is not None and row[2] < since:
        return f"timestamp {row[2]} is before since {since}"
    if until is not None and row[2] >= until:
        return f"timestamp {row[2]} is not before until {until}"
    return ""


def _complete(entries: list[tuple], leaves: dict[int, bytes], head: Checkpoint, valid: dict[int, Checkpoint],
              failures: list[str]) -> None:
    """A complete bundle holds seq 0..S-1; when every entry passed, the rebuilt tree must give every signed root."""
    present = {row[0] for row in entries}
    start = None
    for seq in range(head.size + 1):
        if seq < head.size and seq not in present:
            start = seq if start is None else start
        elif start is not None:
            what = f"entry seq {start} is" if seq - 1 == start else f"entries seq {start}..{seq - 1} are"
            failures.append(f"{what} missing (a complete bundle holds every entry up to tree size {head.size})")
            start = None
    if len(leaves) != head.size or len(entries) != head.size:
        return
    frontier = Frontier()
    for cp_id, cp in sorted(valid.items(), key=lambda item: item[1].size):
        frontier.extend([leaves[seq] for seq in range(frontier.size, cp.size)], keep_nodes=False)
        if frontier.root() != cp.root:
            failures.append(f"checkpoint #{cp_id} (tree size {cp.size}): signed root {cp.root.hex()} does not match "
                            f"the entries' root {frontier.root().hex()} (entries rewritten, or a forked checkpoint)")
