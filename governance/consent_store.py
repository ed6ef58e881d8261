"""Consent events kept as ledger entries: append-only, tamper-evident, history intact."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Sequence

from governance.access_policy import AccessDenied
from governance.clock import utc_now
from governance.consent import (ConsentEvent, ConsentGranted, ConsentRecord, ConsentWithdrawn,
                                UnknownConsentRecordError, consent_event_from_dict, fold_consent)
from governance.entry_types import CONSENT_GRANTED, CONSENT_WITHDRAWN, node_scope
from governance.ledger import EntryDraft, KeyDestroyedError, Ledger


def new_record_id() -> str:
    return f"consent-{uuid.uuid4().hex[:16]}"


def notice_hash(text: str) -> str:
    """SHA-256 of a privacy notice's text, so a record pins the exact notice shown."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def grant_drafts(records: Sequence[ConsentRecord], actor: str) -> list[EntryDraft]:
    """One `consent.granted` entry per record, encrypted under the node's scope."""
    return [
        EntryDraft(CONSENT_GRANTED, {**ConsentGranted(r).to_dict(), "actor": actor},
                   scope=node_scope(r.principal), node_id=r.principal)
        for r in records
    ]


def grant(ledger: Ledger, records: Sequence[ConsentRecord], actor: str) -> list[int]:
    """Record grants, signed in the same transaction; a record id already in the ledger, or twice in `records`, is refused."""
    current = load_records(ledger)
    fold_consent([*(ConsentGranted(r) for r in current.values()), *(ConsentGranted(r) for r in records)])
    return ledger.append(grant_drafts(records, actor), sign=True)


def withdraw(ledger: Ledger, record_id: str, reason: str, actor: str,
             at: datetime | None = None) -> int:
    """Record a withdrawal, signed in the same transaction; it takes effect from the next selection."""
    records = load_records(ledger)
    if record_id not in records:
        raise UnknownConsentRecordError(
            f"no consent record {record_id!r}; list them with `fedgov consent list`")
    event = ConsentWithdrawn(record_id, utc_now(at), reason)
    fold_consent([ConsentGranted(records[record_id]), event])  # refuses a second withdrawal in one line
    principal = records[record_id].principal
    return ledger.append([EntryDraft(CONSENT_WITHDRAWN, {**event.to_dict(), "actor": actor},
                                     scope=node_scope(principal), node_id=principal)], sign=True)[0]


def load_events(ledger: Ledger, cache: dict[int, ConsentEvent | None] | None = None) -> list[ConsentEvent]:
    """Every consent event in ledger order (grants and withdrawals interleaved).

    `cache` (seq -> event, None for an erased one) lets a long-lived reader such as the
    coordinator decrypt each event once, however many rounds re-read consent.
    """
    cache = {} if cache is None else cache
    entries = [*ledger.query(entry_type=CONSENT_GRANTED), *ledger.query(entry_type=CONSENT_WITHDRAWN)]
    entries.sort(key=lambda e: e.seq)
    new = [e for e in entries if e.seq not in cache]
    ledger.prefetch_keys(new)
    for entry in new:
        try:
            payload = dict(ledger.read_payload(entry))
        except KeyDestroyedError:
            cache[entry.seq] = None  # an erased node's consent is unreadable: it counts as no consent
            continue
        except AccessDenied:  # another node's record, read by a node-admin: not this reader's to see
            cache[entry.seq] = None
            continue
        payload.pop("actor", None)
        cache[entry.seq] = consent_event_from_dict(payload)
    return [event for e in entries if (event := cache[e.seq]) is not None]


def load_records(ledger: Ledger, cache: dict[int, ConsentEvent | None] | None = None) -> dict[str, ConsentRecord]:
    """Current state of every consent record, withdrawals folded in (first event wins)."""
    return fold_consent(load_events(ledger, cache), strict=False)
