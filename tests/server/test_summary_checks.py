"""Hostile summaries: each way to break a node's summary is a named rejection, never a crash; the signature covers it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from client.attestation import attest
from fedgov.models import build_model
from fedgov.protocol import MONITORED_RECORDS, SUMMARY_KEY, SUMMARY_TEXT_KEY
from fedgov.summaries import Reference, SummaryRule, summarize, summary_text
from governance.fingerprint import fingerprint_arrays
from governance.identity import NodeKey, NodeRegistry
from server.overhead import Overhead
from server.replies import model_spec, split_replies
from server.reply_verifier import ReplyVerifier
from tests.server.node_reply import FLOWER_ID, NODE, RUN, reply_of
from governance.verify.canonical import CanonicalError
from server.summary_checks import PREFIX, SummaryCheck, parse_summary, structure_problem

ROWS = 40
REFERENCE = Reference(3, "test", ("age", "dose"), {"age": (10.0, 20.0), "dose": (1.0,)}, ("no", "yes"))


def _data():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 30, size=(ROWS, 2)), rng.integers(0, 2, size=ROWS)


def _summary() -> dict:
    x, y = _data()
    return summarize(x, y, REFERENCE, SummaryRule(True, 5))



def _signed(key: NodeKey, text: str | None) -> RecordDict:
    x, y = _data()
    content = RecordDict({"arrays": ArrayRecord(build_model("breast-cancer", seed=1).state_dict()),
                          "metrics": MetricRecord({"train-loss": 0.5, "local-accuracy": 0.7, "num-examples": ROWS})})
    if text is not None:
        content[SUMMARY_KEY] = ConfigRecord({SUMMARY_TEXT_KEY: text})
    attest(content, key, NODE, RUN, 1, fingerprint_arrays(x, y))
    return content


def _judge(content: RecordDict, key: NodeKey) -> tuple[str | None, ReplyVerifier]:
    registry = NodeRegistry()
    registry.register(NODE, key.public_bytes(), "team")
    verifier = ReplyVerifier(RUN, {FLOWER_ID: NODE}, registry, Overhead())
    spec = model_spec(ArrayRecord(build_model("breast-cancer", seed=1).state_dict()))
    [(reply, arrays)], rejected = split_replies([reply_of(content)], spec, MONITORED_RECORDS)
    assert rejected == []
    for check in (SummaryCheck(REFERENCE, 5).check, verifier.check):
        reason = check(1, reply, arrays)
        if reason:
            return reason, verifier
    return None, verifier


def _broken(edit) -> dict:
    summary = json.loads(summary_text(_summary()))
    edit(summary)
    return summary


CASES = {
    "wrong version": (lambda s: s.update(version=2), "version 2, expected 1"),
    "unknown feature": (lambda s: s["features"].update(postcode=[5, 5, 5]), "unknown feature 'postcode'"),
    "missing feature": (lambda s: s["features"].pop("dose"), "missing feature 'dose'"),
    "wrong bin count": (lambda s: s["features"].update(dose=[20, 20, 0]), "feature 'dose' has 3 bins, the reference 2"),
    "negative count": (lambda s: s["features"]["age"].__setitem__(0, -3), "feature 'age' bin 0 is -3"),
    "count below min_count": (lambda s: s["features"]["age"].__setitem__(0, 2), "feature 'age' bin 0 is 2"),
    "huge count": (lambda s: s["features"]["age"].__setitem__(0, 2**52), "outside [5, 40]"),
    "float count": (lambda s: s["features"]["age"].__setitem__(0, 7.5), "holds 7.5, not a whole number"),
    "boolean count": (lambda s: s["features"]["age"].__setitem__(0, True), "holds True"),
    "counts beyond rows": (lambda s: s["features"].update(dose=[30, 30]), "sum to more than the 40 rows"),
    "label not in the schema": (lambda s: s["labels"].update(maybe=7), "labels ['maybe']"),
    "rows not a count": (lambda s: s.update(rows=0), "rows 0 is not a whole number"),
    "foreign cuts": (lambda s: s.update(cuts="0" * 64), "are not the run's reference"),
    "min_count lowered": (lambda s: s.update(min_count=1), "min_count 1 is below the run's 5"),
    "unknown noise": (lambda s: s.update(noise={"kind": "vibes", "scale": 1}), "noise {'kind': 'vibes'"),
    "noise scale without noise": (lambda s: s.update(noise={"kind": "none", "scale": 3}), "noise scale 3"),
    "extra key": (lambda s: s.update(rows_themselves=[[1, 2]]), "keys ["),
    "nested bins": (lambda s: s["features"].update(age=[[5], 6, 7]), "holds [5], not a whole number"),
}


@pytest.mark.parametrize("name", CASES)
def test_a_structurally_bad_summary_is_a_named_rejection(name):
    edit, expected = CASES[name]
    problem = structure_problem(_broken(edit), REFERENCE, 5)
    assert problem is not None and expected in problem, problem


TEXT_CASES = {
    "NaN": ('{"version":NaN}', "not valid JSON"),
    "Infinity": ('{"version":Infinity}', "not valid JSON"),
    "deep nesting beyond the size bound": ("[" * 600_000 + "]" * 600_000, "characters"),
    "deep nesting within the size bound": ("[" * 100_000, "not valid JSON (RecursionError)"),
    "absurd size": (" " * 2_000_000, "not text of at most"),
    "not canonical": ('{"version": 1}', "canonical form"),
    "duplicate keys": ('{"rows":1,"rows":2}', "canonical form"),
    "not text": (b"{}", "not text"),
}


@pytest.mark.parametrize("name", TEXT_CASES)
def test_summary_text_that_is_not_small_canonical_json_is_a_named_rejection(name):
    text, expected = TEXT_CASES[name]
    summary, problem = parse_summary(text)
    assert summary is None and expected in problem, problem


def test_an_honest_summary_passes_and_is_kept_with_its_signed_digest():
    key = NodeKey.generate()
    reason, verifier = _judge(_signed(key, summary_text(_summary())), key)
    assert reason is None
    statement = verifier.take(FLOWER_ID)
    assert statement["summary"] == _summary() and len(statement["summary_digest"]) == 64


def test_a_signed_hostile_summary_is_rejected_by_the_structure_check_with_its_reason():
    key = NodeKey.generate()
    bad = summary_text(_broken(lambda s: s["features"]["age"].__setitem__(0, -3)))
    reason, _ = _judge(_signed(key, bad), key)
    assert reason is not None and reason.startswith(PREFIX) and "bin 0 is -3" in reason


def test_a_summary_changed_added_or_stripped_after_signing_fails_the_signature():
    key = NodeKey.generate()
    content = _signed(key, summary_text(_summary()))
    other = _broken(lambda s: s["labels"].update(no=s["labels"]["no"] - 1 if s["labels"]["no"] else 9))
    content[SUMMARY_KEY] = ConfigRecord({SUMMARY_TEXT_KEY: summary_text(other)})
    assert "bad-signature" in (_judge(content, key)[0] or "")
    stripped = _signed(key, summary_text(_summary()))
    del stripped[SUMMARY_KEY]
    assert "bad-signature" in (_judge(stripped, key)[0] or "")
    added = _signed(key, None)
    added[SUMMARY_KEY] = ConfigRecord({SUMMARY_TEXT_KEY: summary_text(_summary())})
    assert "bad-signature" in (_judge(added, key)[0] or "")


def test_a_summary_whose_rows_are_not_the_signed_fingerprints_is_rejected():
    key = NodeKey.generate()
    summary = _summary()
    summary["rows"] = ROWS + 10  # still within bounds of every count
    reason, _ = _judge(_signed(key, summary_text(summary)), key)
    assert reason == f"bad summary: rows {ROWS + 10} disagrees with the {ROWS} rows of the node's signed dataset fingerprint"


def test_a_reply_without_a_summary_is_allowed_a_node_may_share_nothing():
    key = NodeKey.generate()
    reason, verifier = _judge(_signed(key, None), key)
    assert reason is None and "summary" not in verifier.take(FLOWER_ID)


def test_with_monitoring_off_a_summary_record_is_refused_as_unexpected():
    from fedgov.protocol import GOVERNED_RECORDS

    key = NodeKey.generate()
    spec = model_spec(ArrayRecord(build_model("breast-cancer", seed=1).state_dict()))
    valid, [rejection] = split_replies([reply_of(_signed(key, summary_text(_summary())))], spec, GOVERNED_RECORDS)
    assert valid == [] and "unexpected record 'summary'" in rejection.reason


@pytest.mark.parametrize("kind, reason", [
    ("summary-negative", "bin 0 is -3"),
    ("summary-exposed", "bin 0 is 1, outside [5, 40]"),
    ("summary-unknown-feature", "unknown feature 'patient_postcode'"),
])
def test_each_rehearsed_hostile_summary_is_signed_and_still_rejected_by_name(kind, reason):
    from simulations.rehearsal import apply_fault

    key = NodeKey.generate()
    x, y = _data()
    content = RecordDict({"arrays": ArrayRecord(build_model("breast-cancer", seed=1).state_dict()),
                          "metrics": MetricRecord({"train-loss": 0.5, "num-examples": ROWS}),
                          SUMMARY_KEY: ConfigRecord({SUMMARY_TEXT_KEY: summary_text(_summary())})})
    apply_fault(kind, content)  # before signing, as the rehearsal does
    attest(content, key, NODE, RUN, 1, fingerprint_arrays(x, y))
    problem, _ = _judge(content, key)
    assert problem is not None and problem.startswith(PREFIX) and reason in problem, problem


def test_randomly_broken_summaries_never_raise_through_the_checks():
    import random

    key = NodeKey.generate()
    rnd = random.Random(12)
    odd = [None, True, -1, 0, 2**60, 1.5, float("nan"), "x", [], {}, [[1]], {"a": 1}, "\u0000", 10**400]
    honest = summary_text(_summary())
    for case in range(200):
        if case % 2:  # text level: flip, cut or repeat characters
            chars = list(honest)
            for _ in range(rnd.randrange(1, 6)):
                i = rnd.randrange(len(chars))
                chars[i] = rnd.choice(['"', "{", "]", "9", "-", ".", "e", "n", "\\", " ", "\udcff"])
            text = "".join(chars)
        else:  # structure level: an odd value somewhere, re-encoded canonically where it can be
            summary = json.loads(honest)
            where = rnd.choice([summary, summary["features"], summary["labels"], summary["noise"],
                                summary["features"]["age"]])
            if isinstance(where, list):
                where[rnd.randrange(len(where))] = rnd.choice(odd)
            else:
                where[rnd.choice([*where, "extra"])] = rnd.choice(odd)
            try:
                text = summary_text(summary)
            except (ValueError, TypeError, CanonicalError):
                text = json.dumps(summary)
        reason, _ = _judge(_signed(key, text) if "\udcff" not in text else _signed(key, honest), key)
        assert reason is None or isinstance(reason, str)
