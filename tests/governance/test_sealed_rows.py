"""The column-wise append path (governance/ledger/sealed_rows.py) against the per-entry definitions."""

from __future__ import annotations

import hashlib
import os
import random

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from governance.errors import UsageError
from governance.ledger.entry import EntryDraft
from governance.ledger.envelope import entry_aad
from governance.ledger.sealed_rows import DraftColumns, check_draft, seal_rows
from governance.verify.canonical import canonical_bytes
from governance.verify.leaf import leaf_bytes

TEXTS = ["", "n1", "run-1", "é", "\u2028", '"seq":0,"timestamp":', "%s%d", "\U0001f600", "a\\b\"c"]


def _drafts(rng: random.Random, n: int) -> list[EntryDraft]:
    return [EntryDraft(rng.choice(["round.reply", "t%", "é"]), rng.choice([{"i": i, "loss": 0.25}, {"x": [1, "é"]}]),
                       rng.choice(["node:a", "node:b", "registry"]), run_id=rng.choice(TEXTS),
                       round=rng.choice([None, 0, 3, -(2**53 - 1)]), node_id=rng.choice(TEXTS),
                       model_hash=rng.choice(TEXTS), config_hash=rng.choice(TEXTS)) for i in range(n)]


def test_seal_rows_gives_the_rows_and_leaves_of_the_definitions() -> None:
    rng = random.Random(4)
    keys: dict[tuple[str, str], tuple[str, AESGCM]] = {}

    def key_for(entry_type: str, scope: str) -> tuple[str, AESGCM]:
        return keys.setdefault((entry_type, scope), (os.urandom(16).hex(), AESGCM(AESGCM.generate_key(256))))

    for trial in range(40):
        drafts = _drafts(rng, rng.randint(1, 60))
        timestamp = rng.choice(["2026-11-30T00:00:00.000000Z", "%d\"é"])
        rows, leaves = seal_rows(DraftColumns.of(drafts), 100 * trial, timestamp, "lid%", key_for)
        rows = list(rows)
        assert len(rows) == len(leaves) == len(drafts)
        for i, (draft, row, leaf) in enumerate(zip(drafts, rows, leaves)):
            seq, entry_type, ts, run_id, round_, node_id, model_hash, config_hash, key_id, ciphertext, leaf_hash = row
            assert (seq, entry_type, ts, run_id, round_, node_id, model_hash, config_hash) == (
                100 * trial + i, draft.entry_type, timestamp, draft.run_id, draft.round, draft.node_id,
                draft.model_hash, draft.config_hash)
            expected_key_id, aead = key_for(draft.entry_type, draft.scope)
            assert key_id == expected_key_id
            aad = entry_aad("lid%", seq, entry_type, key_id)
            assert aead.decrypt(ciphertext[:12], ciphertext[12:], aad) == canonical_bytes(draft.payload)
            want = hashlib.sha256(b"\x00" + leaf_bytes(seq, ts, entry_type, run_id, round_, node_id, model_hash,
                                                       config_hash, key_id, ciphertext)).digest()
            assert leaf_hash == leaf == want
        nonces = [row[9][:12] for row in rows]
        assert len(set(nonces)) == len(nonces)


GOOD = EntryDraft("t", {}, "s")
BAD = [
    EntryDraft("", {}, "s"), EntryDraft("t" * 65, {}, "s"), EntryDraft(3, {}, "s"),  # type: ignore[arg-type]
    EntryDraft("t", {}, ""), EntryDraft("t", {}, "s", round=True), EntryDraft("t", {}, "s", round=1.0),  # type: ignore[arg-type]
    EntryDraft("t", {}, "s", round=2**53), EntryDraft("t", {}, "s", run_id="r" * 129),
    EntryDraft("t", {}, "s", node_id=None), EntryDraft("t", [], "s"),  # type: ignore[arg-type]
    EntryDraft("t", {}, "s", model_hash=b"x"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("bad", BAD)
def test_a_batch_fails_with_the_first_invalid_drafts_own_line(bad: EntryDraft) -> None:
    with pytest.raises(UsageError) as alone:
        check_draft(bad)
    later = EntryDraft("", {}, "")  # also invalid, with another message: the first one must be named
    with pytest.raises(UsageError) as in_batch:
        DraftColumns.of([GOOD, GOOD, bad, later, GOOD])
    assert str(in_batch.value) == str(alone.value)


def test_str_subclasses_are_stored_and_grouped_as_plain_strings() -> None:
    class Text(str):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = str.__hash__

    columns = DraftColumns.of([EntryDraft(Text("t"), {}, Text("s"), run_id=Text("r")), EntryDraft("t", {}, "s")])
    assert columns.run_ids == ["r", ""] and all(type(v) is str for v in columns.run_ids + columns.entry_types)
