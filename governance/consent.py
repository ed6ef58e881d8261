"""Consent as append-only events, folded into records a round can be checked against.

Storage-agnostic: the ledger persists the events; the list of events is the
history (GDPR Art. 7: the controller can demonstrate consent, and withdrawal is
one event, as easy as a grant). Field names follow ISO/IEC TS 27560 and the
Kantara Consent Receipt. Times are ISO-8601 strings in UTC (``...Z`` or ``+00:00``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from governance.errors import UsageError
from governance.hashes import SHA256_HEX

VALID = "valid"
EXPIRED = "expired"
WITHDRAWN = "withdrawn"
NOT_YET_VALID = "not-yet-valid"
WRONG_PURPOSE = "wrong-purpose"
NO_CONSENT = "no-consent"
CONSENT_STATES = (VALID, EXPIRED, WITHDRAWN, NOT_YET_VALID, WRONG_PURPOSE)
CHECK_STATES = (*CONSENT_STATES, NO_CONSENT)

GRANTED = "consent.granted"
WITHDRAWN_EVENT = "consent.withdrawn"


class ConsentUsageError(UsageError):
    """Consent input that cannot be recorded as given."""


class InvalidConsentRecordError(ConsentUsageError):
    """A grant with a missing or inconsistent field."""


class DuplicateConsentRecordError(ConsentUsageError):
    """A second grant with a record id already granted."""


class UnknownConsentRecordError(ConsentUsageError):
    """A withdrawal naming a record that was never granted."""


class ConsentAlreadyWithdrawnError(ConsentUsageError):
    """A second withdrawal of the same record."""


def parse_utc(value: str, what: str) -> datetime:
    """Parse an ISO-8601 UTC time; a naive or non-UTC time is refused, not guessed."""
    if not isinstance(value, str):
        raise InvalidConsentRecordError(f"{what} must be an ISO-8601 UTC string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as e:
        raise InvalidConsentRecordError(f"{what} {value!r} is not an ISO-8601 time") from e
    if parsed.utcoffset() != timedelta(0):
        raise InvalidConsentRecordError(f"{what} {value!r} must be in UTC (end it with Z)")
    return parsed


def _require_text(value: object, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidConsentRecordError(f"{what} must be a non-empty string")


@dataclass(frozen=True)
class ConsentRecord:
    """One grant of consent (ISO/IEC TS 27560 record; Kantara receipt fields)."""

    record_id: str
    principal: str
    team: str
    purpose: str
    data_categories: list[str]
    privacy_notice_version: str
    privacy_notice_hash: str
    collection_method: str
    granted_at: str
    jurisdiction: str | None = None
    expires_at: str | None = None
    withdrawn_at: str | None = None

    def __post_init__(self) -> None:
        for name in ("record_id", "principal", "team", "purpose", "privacy_notice_version",
                     "collection_method"):
            _require_text(getattr(self, name), name)
        if not isinstance(self.data_categories, list) or not self.data_categories:
            raise InvalidConsentRecordError(
                f"consent {self.record_id!r}: data_categories must list at least one category"
            )
        for category in self.data_categories:
            _require_text(category, "each data category")
        if not isinstance(self.privacy_notice_hash, str) or not SHA256_HEX.fullmatch(
            self.privacy_notice_hash
        ):
            raise InvalidConsentRecordError(
                f"consent {self.record_id!r}: privacy_notice_hash must be a SHA-256 hex digest"
            )
        if self.jurisdiction is not None:
            _require_text(self.jurisdiction, "jurisdiction")
        granted = parse_utc(self.granted_at, "granted_at")
        if self.expires_at is not None and parse_utc(self.expires_at, "expires_at") <= granted:
            raise InvalidConsentRecordError(
                f"consent {self.record_id!r} expires at {self.expires_at}, "
                f"not after it was granted at {self.granted_at}"
            )
        if self.withdrawn_at is not None and parse_utc(self.withdrawn_at, "withdrawn_at") < granted:
            raise InvalidConsentRecordError(
                f"consent {self.record_id!r} withdrawn at {self.withdrawn_at}, "
                f"before it was granted at {self.granted_at}"
            )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["data_categories"] = list(self.data_categories)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConsentRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise InvalidConsentRecordError(f"unknown consent record fields: {sorted(unknown)}")
        try:
            return cls(**{**data, "data_categories": list(data["data_categories"])})
        except (KeyError, TypeError) as e:
            raise InvalidConsentRecordError(f"malformed consent record: {e}") from e


@dataclass(frozen=True)
class ConsentGranted:
    record: ConsentRecord

    def to_dict(self) -> dict[str, Any]:
        return {"type": GRANTED, "record": self.record.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConsentGranted:
        if data.get("type") != GRANTED:
            raise ConsentUsageError(f"not a {GRANTED} event: type is {data.get('type')!r}")
        return cls(ConsentRecord.from_dict(data["record"]))


@dataclass(frozen=True)
class ConsentWithdrawn:
    record_id: str
    withdrawn_at: str
    reason: str = ""

    def __post_init__(self) -> None:
        _require_text(self.record_id, "record_id")
        parse_utc(self.withdrawn_at, "withdrawn_at")
        if not isinstance(self.reason, str):
            raise InvalidConsentRecordError("withdrawal reason must be a string")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": WITHDRAWN_EVENT,
            "record_id": self.record_id,
            "withdrawn_at": self.withdrawn_at,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConsentWithdrawn:
        if data.get("type") != WITHDRAWN_EVENT:
            raise ConsentUsageError(f"not a {WITHDRAWN_EVENT} event: type is {data.get('type')!r}")
        try:
            return cls(data["record_id"], data["withdrawn_at"], data.get("reason", ""))
        except KeyError as e:
            raise ConsentUsageError(f"withdrawal event lacks {e}") from e


ConsentEvent = ConsentGranted | ConsentWithdrawn


def consent_event_from_dict(data: Mapping[str, Any]) -> ConsentEvent:
    """Read one stored event by its ``type`` tag."""
    kind = data.get("type")
    if kind == GRANTED:
        return ConsentGranted.from_dict(data)
    if kind == WITHDRAWN_EVENT:
        return ConsentWithdrawn.from_dict(data)
    raise ConsentUsageError(f"unknown consent event type {kind!r}")


def fold_consent(events: Iterable[ConsentEvent], strict: bool = True) -> dict[str, ConsentRecord]:
    """Replay events in order into the current record per record id.

    `strict` refuses a repeated grant or withdrawal: what a command checks before it
    appends. Reading what is already in the append-only ledger is not strict: if two
    processes raced and both appended, the first event stands and the repeat is ignored,
    so one race can never make consent unreadable for good.
    """
    records: dict[str, ConsentRecord] = {}
    for event in events:
        if isinstance(event, ConsentGranted):
            record_id = event.record.record_id
            if record_id in records:
                if not strict:
                    continue
                raise DuplicateConsentRecordError(f"consent record {record_id!r} is already granted")
            records[record_id] = event.record
        elif isinstance(event, ConsentWithdrawn):
            current = records.get(event.record_id)
            if current is None:
                raise UnknownConsentRecordError(
                    f"cannot withdraw consent {event.record_id!r}: no such record was granted"
                )
            if current.withdrawn_at is not None:
                if not strict:
                    continue
                raise ConsentAlreadyWithdrawnError(
                    f"consent {event.record_id!r} was already withdrawn at {current.withdrawn_at}"
                )
            records[event.record_id] = dataclasses.replace(current, withdrawn_at=event.withdrawn_at)
        else:
            raise ConsentUsageError(f"not a consent event: {type(event).__name__}")
    return records


def _require_aware(at: datetime) -> None:
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise ConsentUsageError("consent is checked at a timezone-aware time (use UTC)")


def consent_state(record: ConsentRecord, purpose: str, at: datetime) -> str:
    """The state of one record for ``purpose`` at time ``at``.

    Checked in this order: wrong-purpose, withdrawn (at or after withdrawal),
    not-yet-valid (before the grant), expired (at or after expiry), else valid.
    A record withdrawn later was still valid at earlier times, so past rounds
    can be re-checked.
    """
    _require_aware(at)
    if record.purpose != purpose:
        return WRONG_PURPOSE
    if record.withdrawn_at is not None and at >= parse_utc(record.withdrawn_at, "withdrawn_at"):
        return WITHDRAWN
    if at < parse_utc(record.granted_at, "granted_at"):
        return NOT_YET_VALID
    if record.expires_at is not None and at >= parse_utc(record.expires_at, "expires_at"):
        return EXPIRED
    return VALID


@dataclass(frozen=True)
class ConsentCheck:
    """Outcome of looking up a principal's consent: the valid record, or why none is.

    ``record_id`` names the valid record, or the record that explains a refusal;
    it is None only for ``no-consent``.
    """

    principal: str
    state: str
    record_id: str | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return {"principal": self.principal, "state": self.state, "record_id": self.record_id}


def find_valid_consent(
    records: Iterable[ConsentRecord] | Mapping[str, ConsentRecord],
    principal: str,
    purpose: str,
    at: datetime,
) -> ConsentCheck:
    """The newest valid record of ``principal`` for ``purpose`` at ``at``, else the best reason.

    A withdrawal withdraws every record of the principal for that purpose granted at or
    before it, not only the record it names: a node that says "no" is not selected through
    an older "yes". (Withdrawals name no narrower scope.) A record granted after the
    withdrawal is a new "yes". Without a valid record the reason is the state of the newest
    record for that purpose; if the principal only has records for other purposes it is
    wrong-purpose; if none at all, no-consent. Newest = latest ``granted_at``, ties broken
    by the larger record id.
    """
    _require_text(purpose, "purpose")
    _require_aware(at)
    pool = records.values() if isinstance(records, Mapping) else records
    mine = [r for r in pool if r.principal == principal]
    if not mine:
        return ConsentCheck(principal, NO_CONSENT, None)
    mine.sort(key=lambda r: (parse_utc(r.granted_at, "granted_at"), r.record_id), reverse=True)
    withdrawals = [w for r in mine if r.purpose == purpose and r.withdrawn_at is not None
                   and (w := parse_utc(r.withdrawn_at, "withdrawn_at")) <= at]

    def state_of(record: ConsentRecord) -> str:
        state = consent_state(record, purpose, at)
        if state == VALID and any(parse_utc(record.granted_at, "granted_at") <= w for w in withdrawals):
            return WITHDRAWN
        return state

    states = [(state_of(r), r) for r in mine]
    for state, record in states:
        if state == VALID:
            return ConsentCheck(principal, VALID, record.record_id)
    for state, record in states:
        if state != WRONG_PURPOSE:
            return ConsentCheck(principal, state, record.record_id)
    return ConsentCheck(principal, WRONG_PURPOSE, mine[0].record_id)


def records_by_principal(records: Iterable[ConsentRecord]) -> dict[str, list[ConsentRecord]]:
    """Group records by node once, so checking N nodes costs O(records), not O(N x records)."""
    grouped: dict[str, list[ConsentRecord]] = {}
    for record in records:
        grouped.setdefault(record.principal, []).append(record)
    return grouped
