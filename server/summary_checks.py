"""Summary checks: a node's data summary is hostile input, checked before anything reads it.

A reply's `summary` record (fedgov/summaries.py) must be one text of at most MAX_SUMMARY_TEXT
characters, JSON that parses within the decoder's depth, already in RFC 8785 form (so the digest
the node signed is the digest of what is recorded), and match the run's reference exactly:
version 1; `rows` a whole number >= 1 (the signature check then holds it equal to the signed
dataset fingerprint's rows, as it does `num-examples`); `cuts` the reference's hash; `min_count`
at least the run's; a known noise kind with a finite scale; exactly the reference's features,
each with one count per bin; exactly the reference's labels. Every count is null (suppressed) or
a whole number (JSON integer; noise is rounded on the node, so a float is refused) within
[min_count, rows + NOISE_SLACK] (without noise: within [min_count, rows], and a feature's
counts, like the label counts, sum to at most rows). Anything else is a named rejection (`bad summary: ...`), recorded
in `round.rejected`; it never reaches the drift maths.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from flwr.app import Message

from fedgov.protocol import SUMMARY_KEY, NamedArrays, summary_text_of
from fedgov.settings import NOISE_KINDS
from fedgov.summaries import SUMMARY_VERSION, Reference
from governance.ledger.fast_canonical import fast_canonical_str
from governance.verify.canonical import CanonicalError
from server.replies import DECODE_ERRORS, MAX_SAFE_INTEGER, brief

MAX_SUMMARY_TEXT = 1_000_000  # 100 features x 100 bins of 8-digit counts is about 100 kB
MAX_NOISE_SCALE = 1e6
MAX_MIN_COUNT = 2**31
NOISE_SLACK = 10**6  # how far noise may carry a count above the rows (a bound, not a statistic)
SUMMARY_KEYS = frozenset({"version", "rows", "cuts", "min_count", "noise", "features", "labels"})
PREFIX = "bad summary: "


def _count_problem(where: str, value: Any, low: int, high: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{where} holds {brief(value)}, not a whole number or null"
    if not low <= value <= high:
        return f"{where} is {value}, outside [{low}, {high}] (counts below min_count must be null)"
    return None


def structure_problem(summary: Any, reference: Reference, run_min_count: int) -> str | None:
    """Why a parsed summary does not fit the run's reference and rules, or None."""
    if not isinstance(summary, dict):
        return f"not an object but {type(summary).__name__}"
    if set(summary) != SUMMARY_KEYS:
        return f"keys {brief(sorted(map(str, summary)), 200)}, expected {sorted(SUMMARY_KEYS)}"
    if summary["version"] != SUMMARY_VERSION or isinstance(summary["version"], bool):
        return f"version {brief(summary['version'])}, expected {SUMMARY_VERSION}"
    rows = summary["rows"]
    if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= MAX_SAFE_INTEGER:
        return f"rows {brief(rows)} is not a whole number from 1 to 2^53-1"
    if summary["cuts"] != reference.cuts_hash:
        return f"cuts {brief(summary['cuts'])} are not the run's reference ({reference.cuts_hash[:16]}…)"
    k = summary["min_count"]
    if isinstance(k, bool) or not isinstance(k, int) or not run_min_count <= k <= MAX_MIN_COUNT:
        return f"min_count {brief(k)} is below the run's {run_min_count} or not a whole number"
    noise = summary["noise"]
    if not isinstance(noise, dict) or set(noise) != {"kind", "scale"} or noise["kind"] not in NOISE_KINDS:
        return f"noise {brief(noise)} is not {{kind: {'|'.join(NOISE_KINDS)}, scale}}"
    scale = noise["scale"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 <= scale <= MAX_NOISE_SCALE \
            or (noise["kind"] == "none") != (scale == 0):
        return f"noise scale {brief(scale)} is not a number in [0, {MAX_NOISE_SCALE:g}] (0 exactly without noise)"
    high = rows if noise["kind"] == "none" else rows + NOISE_SLACK
    return _features_problem(summary["features"], reference, k, high, exact=noise["kind"] == "none") \
        or _labels_problem(summary["labels"], reference, k, high, exact=noise["kind"] == "none")


def _features_problem(features: Any, reference: Reference, k: int, high: int, exact: bool) -> str | None:
    if not isinstance(features, dict):
        return "features is not an object"
    unknown = sorted(set(features) - set(reference.features))
    missing = [f for f in reference.features if f not in features]
    if unknown:
        return f"unknown feature {brief(unknown[0])} (not in the run's reference)"
    if missing:
        return f"missing feature {brief(missing[0])}"
    for name in reference.features:
        counts = features[name]
        bins = reference.bin_count(name)
        if not isinstance(counts, list) or len(counts) != bins:
            length = len(counts) if isinstance(counts, list) else type(counts).__name__
            return f"feature {brief(name)} has {length} bins, the reference {bins}"
        for i, value in enumerate(counts):
            problem = _count_problem(f"feature {brief(name)} bin {i}", value, k, high)
            if problem:
                return problem
        if exact and sum(c for c in counts if c is not None) > high:
            return f"feature {brief(name)} counts sum to more than the {high} rows"
    return None


def _labels_problem(labels: Any, reference: Reference, k: int, high: int, exact: bool) -> str | None:
    if not isinstance(labels, dict):
        return "labels is not an object"
    if set(labels) != set(reference.labels):
        odd = sorted(set(labels) ^ set(reference.labels))
        return f"labels {brief(odd, 120)} differ from the schema's {brief(list(reference.labels), 120)}"
    for name in reference.labels:
        problem = _count_problem(f"label {brief(name)}", labels[name], k, high)
        if problem:
            return problem
    if exact and sum(c for c in labels.values() if c is not None) > high:
        return f"label counts sum to more than the {high} rows"
    return None


def parse_summary(text: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(summary, None), or (None, why) when the text is too long, not JSON, or not in canonical form."""
    if not isinstance(text, str) or len(text) > MAX_SUMMARY_TEXT:
        return None, f"the summary is not text of at most {MAX_SUMMARY_TEXT} characters"
    try:
        summary = json.loads(text, parse_constant=_no_constant)
        canonical = fast_canonical_str(summary)  # canonical_str's text, by the C encoder where provable
    except (CanonicalError, *DECODE_ERRORS) as err:  # NaN, Infinity, depth, bad UTF-8
        return None, f"the summary is not valid JSON ({type(err).__name__})"
    if canonical != text:
        return None, "the summary is not in RFC 8785 canonical form (its digest would not be the recorded one's)"
    return summary, None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


class SummaryCheck:
    """`check(round, reply, arrays)` for the governed strategy: a reply's summary fits the run's reference.

    It keeps the summaries it accepted this round, parsed, for the monitor (`accepted`): parsing and
    the canonical-form check are most of a summary's cost at the coordinator, so they are done once.
    """

    def __init__(self, reference: Reference, run_min_count: int) -> None:
        self.reference = reference
        self.run_min_count = run_min_count
        self._round: int | None = None
        self._accepted: dict[int, tuple[Message, dict[str, Any]]] = {}  # id(reply) -> (reply, its summary)

    def check(self, server_round: int, reply: Message, arrays: NamedArrays) -> str | None:
        if server_round != self._round:  # a new round: last round's summaries are no longer asked for
            self._round, self._accepted = server_round, {}
        if SUMMARY_KEY not in reply.content:
            return None  # a node's policy may share nothing
        summary, problem = parse_summary(summary_text_of(reply.content))
        if problem is None:
            problem = structure_problem(summary, self.reference, self.run_min_count)
        if problem:
            return PREFIX + problem
        self._accepted[id(reply)] = (reply, summary)  # the reply is held too, so its id stays its own
        return None

    def accepted(self, reply: Message) -> dict[str, Any]:
        """The summary of a reply this check accepted this round, as parsed then; one it did not see is parsed
        and checked now (ValueError when it does not pass)."""
        held = self._accepted.get(id(reply))
        if held is not None and held[0] is reply:
            return held[1]
        summary = summary_of(reply.content)
        problem = structure_problem(summary, self.reference, self.run_min_count)
        if problem:
            raise ValueError(PREFIX + problem)
        return summary


def summary_of(content: Mapping[str, Any]) -> dict[str, Any]:
    """A checked reply's summary, parsed (after SummaryCheck accepted it)."""
    summary, problem = parse_summary(summary_text_of(content))  # type: ignore[arg-type]
    if summary is None:
        raise ValueError(problem)
    return summary

