"""Drift between two data summaries: PSI and Jensen-Shannon distance, and the verdict they give.

Pure functions over the summaries nodes send (fedgov/summaries.py): lists of per-bin counts in
which a suppressed bin is None, and each side's row count.

1. Alignment (`aligned`). Both histograms are put over the same bins: a bin suppressed on
   *either* side is left out of *both*, and each side's mass that the kept bins do not hold
   (its suppressed bins, and rows noise or suppression hid) goes into one extra "remainder"
   bin, max(rows - sum of kept counts, 0). Mass that moves into a suppressed region still shows.
2. PSI = sum_i (p_i - q_i) * ln(p_i / q_i) over proportions p (current) and q (reference).
   Smoothing: an empty bin's proportion is raised to EPSILON = 1e-4 and each side is then
   renormalised to sum to 1, so PSI is finite; a bin empty on both sides adds 0.
3. Jensen-Shannon distance, base 2: sqrt(JSD) with JSD = (KL(p||m) + KL(q||m)) / 2,
   m = (p + q) / 2, logarithms base 2 (as `scipy.spatial.distance.jensenshannon(p, q, base=2)`);
   no smoothing is needed (0 * log 0 = 0); it lies in [0, 1].
4. Verdict: "insufficient" when the current rows are below the minimum count; "significant"
   when PSI >= psi_significant; "moderate" when PSI >= psi_moderate or JS >= js; else "none".
   A node's verdict is its worst feature verdict (labels are judged and recorded apart).

Either figure is None when a side has no mass at all (nothing to compare), and both are None for
a node whose rows are below the minimum count: no verdict is given on so few rows, so none of
its figures is computed (with k-suppression, such a node's bins are mostly hidden anyway).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

EPSILON = 1e-4
VERDICTS = ("none", "moderate", "significant")  # in order of severity; "insufficient" stands apart
INSUFFICIENT = "insufficient"
FEDERATION = "federation"

Counts = Sequence["int | float | None"]
CountsOf = Callable[[Mapping[str, Any]], Counts]  # one histogram of a summary: a feature's bins, or its labels


@dataclass(frozen=True)
class Thresholds:
    """When a figure is drift: PSI moderate and significant, JS distance, and rows needed for any verdict."""

    psi_moderate: float = 0.1
    psi_significant: float = 0.25
    js: float = 0.1
    min_count: int = 30

    def to_dict(self) -> dict[str, Any]:
        return {"psi_moderate": self.psi_moderate, "psi_significant": self.psi_significant, "js": self.js,
                "min_count": self.min_count}


def aligned(current: Counts, reference: Counts, current_rows: float, reference_rows: float
            ) -> tuple[list[float], list[float]]:
    """Both histograms over the bins visible on both sides, plus one remainder bin each (step 1)."""
    if len(current) != len(reference):
        raise ValueError(f"histograms of {len(current)} and {len(reference)} bins")
    pairs = [(float(x), float(y)) if x is not None and y is not None else (0.0, 0.0) for x, y in zip(current, reference)]
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    return a + [max(float(current_rows) - sum(a), 0.0)], b + [max(float(reference_rows) - sum(b), 0.0)]


def _proportions(counts: Sequence[float]) -> list[float] | None:
    total = sum(counts)
    return None if total <= 0 else [c / total for c in counts]


def _smoothed(p: list[float]) -> list[float]:
    raised = [max(x, EPSILON) for x in p]
    total = sum(raised)
    return [x / total for x in raised]


def psi(current: Sequence[float], reference: Sequence[float]) -> float | None:
    """Population stability index of two count vectors over the same bins (step 2)."""
    p, q = _proportions(current), _proportions(reference)
    if p is None or q is None:
        return None
    p, q = _smoothed(p), _smoothed(q)
    return sum((pi - qi) * math.log(pi / qi) for pi, qi in zip(p, q))


def js_distance(current: Sequence[float], reference: Sequence[float]) -> float | None:
    """Jensen-Shannon distance, base 2, of two count vectors over the same bins (step 3)."""
    p, q = _proportions(current), _proportions(reference)
    if p is None or q is None:
        return None
    divergence = 0.0
    for pi, qi in zip(p, q):
        mi = (pi + qi) / 2
        if pi > 0:
            divergence += pi * math.log2(pi / mi) / 2
        if qi > 0:
            divergence += qi * math.log2(qi / mi) / 2
    return math.sqrt(max(divergence, 0.0))


def verdict(psi_value: float | None, js_value: float | None, rows: int, thresholds: Thresholds) -> str:
    """The decision for one figure pair (step 4)."""
    if rows < thresholds.min_count or psi_value is None or js_value is None:
        return INSUFFICIENT
    if psi_value >= thresholds.psi_significant:
        return "significant"
    if psi_value >= thresholds.psi_moderate or js_value >= thresholds.js:
        return "moderate"
    return "none"


def worst(verdicts: Sequence[str]) -> str:
    """The most severe of some verdicts; "insufficient" only when none is a real verdict."""
    real = [v for v in verdicts if v in VERDICTS]
    return max(real, key=VERDICTS.index) if real else INSUFFICIENT


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def figures(current: Sequence[float], reference: Sequence[float]) -> tuple[float | None, float | None]:
    """`(psi(current, reference), js_distance(current, reference))`, fused.

    The same formulas as the two functions above, in comprehensions: a round judges every feature
    of every node twice, and this is most of what monitoring costs the coordinator (docs/benchmarks.md).
    """
    total_a, total_b = sum(current), sum(reference)
    if total_a <= 0 or total_b <= 0:
        return None, None
    p = [x / total_a for x in current]
    q = [y / total_b for y in reference]
    ps = [v if v > EPSILON else EPSILON for v in p]
    qs = [v if v > EPSILON else EPSILON for v in q]
    sa, sb = sum(ps), sum(qs)
    log, log2 = math.log, math.log2
    psi_value = sum((a / sa - b / sb) * log((a * sb) / (b * sa)) for a, b in zip(ps, qs))
    divergence = sum((pi * log2(2 * pi / (pi + qi)) if pi > 0 else 0.0) + (qi * log2(2 * qi / (pi + qi)) if qi > 0 else 0.0)
                     for pi, qi in zip(p, q)) / 2
    return psi_value, math.sqrt(max(divergence, 0.0))


def compare(current: Counts, reference: Counts, previous: Counts | None, rows: tuple[int, int, int | None],
            thresholds: Thresholds) -> dict[str, Any]:
    """PSI and JS of one histogram against the reference and the previous one, with the verdicts."""
    now_rows, ref_rows, prev_rows = rows
    if now_rows < thresholds.min_count:  # no verdict on so few rows, so no figure either (step 4)
        return {"psi_reference": None, "js_reference": None, "psi_previous": None, "js_previous": None,
                "verdict": INSUFFICIENT, "verdict_previous": INSUFFICIENT if previous is not None else None}
    a, b = aligned(current, reference, now_rows, ref_rows)
    psi_ref, js_ref = figures(a, b)
    out: dict[str, Any] = {"psi_reference": _rounded(psi_ref), "js_reference": _rounded(js_ref),
                           "psi_previous": None, "js_previous": None,
                           "verdict": verdict(psi_ref, js_ref, now_rows, thresholds), "verdict_previous": None}
    if previous is not None and prev_rows is not None:
        a, c = aligned(current, previous, now_rows, prev_rows)
        psi_prev, js_prev = figures(a, c)
        out.update(psi_previous=_rounded(psi_prev), js_previous=_rounded(js_prev),
                   verdict_previous=verdict(psi_prev, js_prev, now_rows, thresholds))
    return out


def _label_counts(summary: Mapping[str, Any], labels: Sequence[str]) -> list[Any]:
    return [summary["labels"][label] for label in labels]


def node_drift(node_id: str, server_round: int, summary: Mapping[str, Any], reference: Mapping[str, Any],
               reference_round: int, previous: Mapping[str, Any] | None, features: Sequence[str],
               labels: Sequence[str], thresholds: Thresholds) -> dict[str, Any]:
    """The `monitor.drift` payload of one node this round (docs/monitoring.md)."""
    rows = (summary["rows"], reference["rows"], previous["rows"] if previous is not None else None)
    per_feature = {f: compare(summary["features"][f], reference["features"][f],
                              previous["features"][f] if previous is not None else None, rows, thresholds)
                   for f in features}
    label_figures = compare(_label_counts(summary, labels), _label_counts(reference, labels),
                            _label_counts(previous, labels) if previous is not None else None, rows, thresholds)
    return _payload(node_id, server_round, summary["rows"], reference_round, per_feature, label_figures, thresholds)


def _payload(node_id: str, server_round: int, rows: int, reference_round: int, per_feature: dict[str, Any],
             label_figures: dict[str, Any], thresholds: Thresholds) -> dict[str, Any]:
    node_verdict = INSUFFICIENT if rows < thresholds.min_count else worst([v["verdict"] for v in per_feature.values()])
    return {"node_id": node_id, "round": server_round, "rows": rows, "reference_round": reference_round,
            "features": per_feature, "labels": label_figures, "thresholds": thresholds.to_dict(),
            "verdict": node_verdict,
            "drifting_features": sorted(f for f, v in per_feature.items() if v["verdict"] == "significant")}


@dataclass(frozen=True)
class NodeHistory:
    """One node's summaries as the federation figure pools them: this round's, its reference, its previous."""

    node_id: str
    summary: Mapping[str, Any]
    reference: Mapping[str, Any]
    reference_round: int
    previous: Mapping[str, Any] | None


def _pooled(histories: Sequence[NodeHistory], counts_of: CountsOf, previous: bool) -> tuple[list[float], list[float]]:
    """Sum over nodes of each node's aligned pair (so each node's suppression is handled as for the node alone)."""
    now: list[float] = []
    then: list[float] = []
    for h in histories:
        other = h.previous if previous else h.reference
        a, b = aligned(counts_of(h.summary), counts_of(other), h.summary["rows"], other["rows"])
        now = [x + y for x, y in zip(now, a)] if now else a
        then = [x + y for x, y in zip(then, b)] if then else b
    return now, then


def federation_drift(server_round: int, histories: Sequence[NodeHistory], features: Sequence[str],
                     labels: Sequence[str], thresholds: Thresholds) -> dict[str, Any]:
    """The federation-wide `monitor.drift` payload: every node's histograms pooled, against their pooled
    references (and, over the nodes that have one, their pooled previous ones)."""
    rows = sum(h.summary["rows"] for h in histories)
    with_previous = [h for h in histories if h.previous is not None]

    def pooled_figures(counts_of: CountsOf) -> dict[str, Any]:
        a, b = _pooled(histories, counts_of, previous=False)
        psi_ref, js_ref = figures(a, b)
        out: dict[str, Any] = {"psi_reference": _rounded(psi_ref), "js_reference": _rounded(js_ref),
                               "psi_previous": None, "js_previous": None,
                               "verdict": verdict(psi_ref, js_ref, rows, thresholds), "verdict_previous": None}
        if with_previous:
            a, c = _pooled(with_previous, counts_of, previous=True)
            prev_rows = sum(h.summary["rows"] for h in with_previous)
            psi_prev, js_prev = figures(a, c)
            out.update(psi_previous=_rounded(psi_prev), js_previous=_rounded(js_prev),
                       verdict_previous=verdict(psi_prev, js_prev, prev_rows, thresholds))
        return out

    per_feature = {f: pooled_figures(lambda s, f=f: s["features"][f]) for f in features}
    label_figures = pooled_figures(lambda s: _label_counts(s, labels))
    payload = _payload(FEDERATION, server_round, rows, min(h.reference_round for h in histories), per_feature,
                       label_figures, thresholds)
    payload["nodes"] = sorted(h.node_id for h in histories)
    return payload
