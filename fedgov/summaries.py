"""Node-side data summaries: histograms over shared cuts and a label distribution, never rows.

Both apps agree here on the reference (the cut points the coordinator sends) and on the
summary a node sends back (docs/monitoring.md, "Summaries"):

1. The coordinator computes, per feature, the interior cut points c1 < ... < c_m (m <= B-1) at
   the quantiles k/B (k = 1..B-1) of its held-out split, dropping repeated values (a feature
   that is mostly one value gets fewer bins). Bins are (-inf, c1], (c1, c2], ..., (c_m, +inf).
   It sends them in the train config (`monitor-reference`, canonical JSON) and records them
   once per run (`monitor.reference`); `cuts_hash` is SHA-256 of the canonical JSON of
   `{"cuts": ..., "features": ..., "labels": ...}`.
2. The node counts its training rows per bin and per label. With noise on, it adds Laplace
   (scale b) or Gaussian (sigma) noise to every count, then rounds to the nearest integer and
   clamps at 0: counts on the wire are always whole numbers >= 0 (post-processing keeps the
   noise's guarantee). Then every count below the minimum count k becomes null (suppressed);
   if the suppressed counts total more than 0 but less than k, the smallest count still shown is
   suppressed too (complementary suppression: `rows` minus the shown counts would otherwise
   give a small hidden count exactly, e.g. a rare label's).
3. The summary is the RFC 8785 JSON text of
   `{"version", "rows", "cuts", "min_count", "noise": {"kind", "scale"}, "features", "labels"}`;
   its SHA-256 (`summary_digest`) is part of what the node signs.

`rows` is exact: it equals the signed dataset fingerprint's row count already.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from governance.ledger.fast_canonical import fast_canonical_str
from governance.verify.canonical import canonical_bytes, canonical_str

SUMMARY_VERSION = 1
REFERENCE_SOURCE = "quantiles of the coordinator's held-out split"

Counts = list["int | None"]


@dataclass(frozen=True)
class Reference:
    """The shared, fixed bins: cut points per feature, and the labels a summary counts."""

    bins: int
    source: str
    features: tuple[str, ...]
    cuts: Mapping[str, tuple[float, ...]]
    labels: tuple[str, ...]

    @cached_property
    def cuts_hash(self) -> str:
        """SHA-256 of the canonical JSON of the cuts, features and labels: what a summary names.

        Computed once per reference: every summary of a run names it, on the node and at the check.
        """
        return hashlib.sha256(canonical_bytes({"cuts": {f: list(c) for f, c in self.cuts.items()},
                                               "features": list(self.features),
                                               "labels": list(self.labels)})).hexdigest()

    def bin_count(self, feature: str) -> int:
        return len(self.cuts[feature]) + 1

    def to_dict(self) -> dict[str, Any]:
        """The `monitor.reference` payload, and what the train config carries."""
        return {"bins": self.bins, "source": self.source, "features": list(self.features),
                "cuts": {f: list(c) for f, c in self.cuts.items()}, "labels": list(self.labels),
                "cuts_hash": self.cuts_hash}

    def to_text(self) -> str:
        return canonical_str(self.to_dict())

    @classmethod
    def from_text(cls, text: str) -> "Reference":
        """The reference as the train config carried it (the coordinator's word; checked for shape only).

        Parsed once per text and process: a node gets the same reference every round of a run.
        """
        return _reference_from_text(text)

    @classmethod
    def _parse(cls, text: str) -> "Reference":
        data = json.loads(text)
        features = tuple(str(f) for f in data["features"])
        cuts = MappingProxyType({f: tuple(float(c) for c in data["cuts"][f]) for f in features})  # shared: read-only
        return cls(int(data["bins"]), str(data["source"]), features, cuts, tuple(str(x) for x in data["labels"]))


@lru_cache(maxsize=8)
def _reference_from_text(text: str) -> Reference:
    return Reference._parse(text)


def reference_from(x: np.ndarray, features: Sequence[str], labels: Sequence[str], bins: int,
                   source: str = REFERENCE_SOURCE) -> Reference:
    """Interior cut points at the quantiles k/bins of each feature of `x` (rows x features), repeats dropped."""
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if flat.shape[1] != len(features):
        raise ValueError(f"{flat.shape[1]} columns but {len(features)} feature names")
    levels = np.arange(1, bins) / bins
    cuts = {}
    for j, name in enumerate(features):
        values = np.quantile(flat[:, j], levels) if len(flat) else np.array([])
        cuts[name] = tuple(float(v) for v in np.unique(values))
    return Reference(bins, source, tuple(features), cuts, tuple(labels))


NOISE_STDEV_PER_SCALE = {"laplace": math.sqrt(2.0), "gaussian": 1.0}  # the noise's standard deviation per unit scale


@dataclass(frozen=True)
class SummaryRule:
    """What one node shares: whether it shares at all, its minimum count, its noise."""

    share: bool
    min_count: int
    noise: str = "none"  # none | laplace | gaussian
    scale: float = 0.0  # Laplace b or Gaussian sigma, in counts


def effective_rule(run: SummaryRule, site: SummaryRule | None) -> SummaryRule:
    """The run's rule, tightened by the node's own policy: the site may share less, never more.

    A site's min_count can only raise the run's; a site that declares noise has its kind, at a scale
    whose standard deviation is at least the run's noise's (Laplace b has b * sqrt(2)); a site that
    does not share, does not.
    """
    if site is None:
        return run
    noise, scale = run.noise, run.scale
    if site.noise != "none":
        run_stdev = run.scale * NOISE_STDEV_PER_SCALE.get(run.noise, 0.0)
        noise, scale = site.noise, max(site.scale, run_stdev / NOISE_STDEV_PER_SCALE[site.noise])
    return SummaryRule(run.share and site.share, max(run.min_count, site.min_count), noise, scale)


def bin_counts(column: np.ndarray, cuts: Sequence[float]) -> np.ndarray:
    """Counts of `column` in (-inf, c1], (c1, c2], ..., (c_m, +inf)."""
    index = np.searchsorted(np.asarray(cuts, dtype=np.float64), np.asarray(column, dtype=np.float64), side="left")
    return np.bincount(index, minlength=len(cuts) + 1)


def _disclosed(counts: np.ndarray, rule: SummaryRule, rng: np.random.Generator) -> Counts:
    """Noise (rounded, clamped at 0), then suppression of every count below the minimum count."""
    values = counts.astype(np.float64)
    if rule.noise == "laplace":
        values = values + rng.laplace(0.0, rule.scale, size=values.shape)
    elif rule.noise == "gaussian":
        values = values + rng.normal(0.0, rule.scale, size=values.shape)
    whole = np.maximum(np.rint(values), 0).astype(np.int64)
    suppressed = whole < rule.min_count
    hidden = int(whole[suppressed].sum())
    if 0 < hidden < rule.min_count and not suppressed.all():
        # Complementary suppression: `rows` minus the shown counts would give the hidden total, which is one
        # small count when one bin is hidden. Hiding the smallest shown bin too makes that total >= min_count.
        shown = np.flatnonzero(~suppressed)
        suppressed[shown[np.argmin(whole[shown])]] = True
    return [None if hide else int(v) for v, hide in zip(whole, suppressed)]


def summarize(x: np.ndarray, y: np.ndarray, reference: Reference, rule: SummaryRule,
              rng: np.random.Generator | None = None) -> dict[str, Any]:
    """The node's summary of its rows `x` (rows x features) with labels `y` (indices into reference.labels).

    Noise, when on, draws from the operating system's entropy unless `rng` is given (tests).
    """
    rng = rng if rng is not None else np.random.default_rng()
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    features = {name: _disclosed(bin_counts(flat[:, j], reference.cuts[name]), rule, rng)
                for j, name in enumerate(reference.features)}
    label_counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=len(reference.labels))
    labels = dict(zip(reference.labels, _disclosed(label_counts[:len(reference.labels)], rule, rng)))
    return {"version": SUMMARY_VERSION, "rows": int(len(flat)), "cuts": reference.cuts_hash,
            "min_count": rule.min_count, "noise": {"kind": rule.noise, "scale": rule.scale},
            "features": features, "labels": labels}


def summary_text(summary: Mapping[str, Any]) -> str:
    """The summary as it travels: RFC 8785 JSON, so its digest is the same on both sides.

    Through the C JSON encoder where that is provably JCS (governance/ledger/fast_canonical.py):
    a node writes one per reply and the coordinator re-encodes each it receives.
    """
    return fast_canonical_str(dict(summary))


def summary_digest(text: str) -> str:
    """SHA-256 of the summary's text as sent (UTF-8): what the node's signature covers."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
