"""The evidence a retraining check weighs, read from the ledger: the latest monitor.metrics and its drift verdicts.

The latest run is the one whose monitor.metrics entry came last (or the run asked for); its
latest monitor.metrics entry gives the round, and that round's monitor.drift entries the
per-node verdicts. Past monitor.trigger entries that decided to retrain give the cooldown
and which evidence was already acted on. A ledger with no monitor.metrics entry has no
evidence: that is an error, never an empty answer ("nothing fired" must mean something).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from governance import entry_types as et
from governance.clock import TIMESTAMP_FORMAT
from governance.errors import UsageError
from governance.ledger import Ledger
from governance.monitoring.drift import FEDERATION  # the pooled drift figure's node_id in monitor.drift

RETRAIN = "retrain"
NO_RETRAIN = "no-retrain"


class NoEvidenceError(UsageError):
    """The ledger (or the run asked for) holds no monitor.metrics entry: nothing to weigh (exit 2)."""


@dataclass(frozen=True)
class Evidence:
    """One round's monitoring findings: the metrics entry, and the node drift entries of that round."""

    run_id: str
    round: int
    metrics_seq: int
    metrics: dict[str, Any]
    drift: dict[str, dict[str, Any]] = field(default_factory=dict)  # node -> its monitor.drift payload
    drift_seqs: list[int] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, int]:
        """What identifies the evidence: a decision taken on it is not taken again."""
        return (self.run_id, self.metrics_seq)

    def to_record(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "round": self.round, "metrics_seq": self.metrics_seq,
                "drift_seqs": list(self.drift_seqs)}


@dataclass(frozen=True)
class PastDecision:
    """A monitor.trigger entry that decided to retrain: when, and on which evidence."""

    seq: int
    at: datetime
    evidence: tuple[str, int]


def latest_evidence(ledger: Ledger, run_id: str | None = None) -> Evidence:
    """The latest run's (or `run_id`'s) latest monitor.metrics entry, with that round's drift verdicts."""
    entries = ledger.query(entry_type=et.MONITOR_METRICS, run_id=run_id)
    if not entries:
        if run_id is not None:
            from governance.known_names import unknown_name

            runs = ledger.distinct("run_id")
            if run_id not in runs:
                raise unknown_name("--run", run_id, runs)
            raise NoEvidenceError(f"run {run_id} has no monitoring evidence (no {et.MONITOR_METRICS} entry): it ran with "
                             "monitoring off, or has not finished a round; see docs/monitoring.md")
        raise NoEvidenceError(f"this ledger holds no monitoring evidence (no {et.MONITOR_METRICS} entry): run a "
                         "federation with monitoring on first (the run config's `monitor`, on by default); "
                         "see docs/monitoring.md")
    latest = entries[-1]
    metrics = ledger.read_payload(latest)
    round_ = latest.round if latest.round is not None else _int(metrics.get("round"))
    drift: dict[str, dict[str, Any]] = {}
    seqs: list[int] = []
    # no round, no drift: a query without one would mix every round's verdicts
    found = ledger.query(entry_type=et.MONITOR_DRIFT, run_id=latest.run_id, round=round_) if round_ is not None else []
    ledger.prefetch_keys(found)
    for entry in found:
        payload = ledger.read_payload(entry)
        node = payload.get("node_id") if isinstance(payload.get("node_id"), str) else entry.node_id
        if node == FEDERATION or not node:
            continue
        drift[node] = payload
        seqs.append(entry.seq)
    return Evidence(latest.run_id, round_ or 0, latest.seq, metrics, drift, seqs)


def past_retraining(ledger: Ledger, *, after_seq: int = 0, since: datetime | None = None) -> list[PastDecision]:
    """The recorded decisions to retrain that can still hold a check, oldest first.

    Those are the ones taken on the evidence at `after_seq` (so recorded after it) and those
    within the cooldown (`since` on): a watch that runs for months decrypts only these, not
    every check it ever recorded. With neither bound, every decision to retrain.
    """
    found = []
    entries = [e for e in ledger.query(entry_type=et.MONITOR_TRIGGER)
               if e.seq > after_seq or since is None or parse_timestamp(e.timestamp) >= since]
    ledger.prefetch_keys(entries)
    for entry in entries:
        payload = ledger.read_payload(entry)
        if payload.get("decision") != RETRAIN:
            continue
        evidence = payload.get("evidence") or {}
        found.append(PastDecision(entry.seq, parse_timestamp(entry.timestamp),
                                  (str(evidence.get("run_id", "")), _int(evidence.get("metrics_seq")) or 0)))
    return found


def parse_timestamp(text: str) -> datetime:
    """A ledger timestamp (governance.clock) as an aware UTC datetime."""
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
