"""Node summaries: histograms over the shared cuts and a label distribution, small counts suppressed, never rows."""

from __future__ import annotations

import numpy as np

from fedgov.datasets import load_split
from fedgov.local_data import schema_for
from fedgov.summaries import (Reference, SummaryRule, bin_counts, effective_rule, reference_from, summarize,
                              summary_digest, summary_text)
from governance.verify.canonical import canonical_str


def test_bins_are_left_open_right_closed_around_the_cuts():
    assert bin_counts(np.array([-5.0, 1.0, 1.5, 2.0, 2.01, 9.0]), [1.0, 2.0]).tolist() == [2, 2, 2]


def test_cuts_are_quantiles_of_the_held_out_split_with_repeats_dropped():
    x = np.array([[v, 0.0] for v in range(100)], dtype=np.float32)
    ref = reference_from(x, ["age", "constant"], ["a", "b"], bins=4)
    assert ref.cuts["age"] == (24.75, 49.5, 74.25) and ref.cuts["constant"] == (0.0,)
    assert ref.bin_count("age") == 4 and ref.bin_count("constant") == 2
    assert Reference.from_text(ref.to_text()) == ref and Reference.from_text(ref.to_text()).cuts_hash == ref.cuts_hash


def test_bundled_datasets_get_one_reference_per_feature_of_their_schema():
    for name in ("breast-cancer", "digits"):
        _, held_out = load_split(name, 42)
        schema = schema_for(name)
        ref = reference_from(held_out.x, schema.feature_names, schema.labels, 10)
        assert ref.features == schema.feature_names and ref.labels == schema.labels
        assert all(len(c) <= 9 and list(c) == sorted(set(c)) for c in ref.cuts.values())


def _ref() -> Reference:
    return Reference(3, "test", ("age",), {"age": (10.0, 20.0)}, ("no", "yes"))


def test_a_summary_counts_rows_per_bin_and_label_and_suppresses_counts_below_the_minimum():
    x = np.array([[5.0]] * 7 + [[15.0]] * 2 + [[25.0]] * 6)
    y = np.array([0] * 12 + [1] * 3)
    summary = summarize(x, y, _ref(), SummaryRule(True, 5))
    assert summary == {"version": 1, "rows": 15, "cuts": _ref().cuts_hash, "min_count": 5,
                       "noise": {"kind": "none", "scale": 0.0},
                       "features": {"age": [7, None, None]}, "labels": {"no": None, "yes": None}}
    # 2 and 3 are under 5; 15 rows minus the shown counts would give them exactly, so the smallest shown
    # count is hidden with them (complementary suppression: the hidden total is >= 5)
    text = summary_text(summary)
    assert text == canonical_str(summary) and len(summary_digest(text)) == 64


def test_noisy_counts_are_whole_numbers_at_or_above_the_minimum_and_record_the_noise():
    x = np.linspace(0, 30, 300).reshape(-1, 1)
    y = np.arange(300) % 2
    for kind in ("laplace", "gaussian"):
        s = summarize(x, y, _ref(), SummaryRule(True, 5, kind, 3.0), np.random.default_rng(1))
        assert s["noise"] == {"kind": kind, "scale": 3.0}
        counts = [*s["features"]["age"], *s["labels"].values()]
        assert all(c is None or (type(c) is int and c >= 5) for c in counts)
        assert counts != [100, 100, 100, 150, 150]  # noise was added


def test_a_sites_policy_can_only_tighten_what_the_run_asks():
    run = SummaryRule(True, 5, "none", 0.0)
    assert effective_rule(run, SummaryRule(True, 20)).min_count == 20
    assert effective_rule(run, SummaryRule(True, 2)).min_count == 5  # the run cannot lower a site's floor, nor the site the run's
    assert effective_rule(run, SummaryRule(False, 5)).share is False
    assert effective_rule(SummaryRule(False, 5), SummaryRule(True, 5)).share is False  # monitoring off: nothing
    noisy = effective_rule(run, SummaryRule(True, 5, "laplace", 2.0))
    assert (noisy.noise, noisy.scale) == ("laplace", 2.0)
    assert effective_rule(SummaryRule(True, 5, "laplace", 4.0), SummaryRule(True, 5, "laplace", 2.0)).scale == 4.0
