"""The one timestamp form fedgov writes, in ledger entries and consent records alike.

RFC 3339, UTC, with microseconds: `2025-01-31T12:00:00.000000Z`. One definition, so the
ledger and the consent records it holds cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime, timezone

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now(at: datetime | None = None) -> str:
    """Now (or `at`, a UTC datetime) as an RFC 3339 UTC timestamp with microseconds."""
    return (at or datetime.now(timezone.utc)).strftime(TIMESTAMP_FORMAT)
