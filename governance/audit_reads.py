"""Audit of the audit: every decrypting read is itself an entry (HIPAA §164.312(b): "record and examine activity").

An `audit.read` entry says who read (an identity's name, role and fingerprint, or "operator
(passphrase)"), with which command and filter, how many entries matched, and when. It is
appended before any payload is shown, and it is sealed: only auditors read it. The operator's
entry is signed at once; an identity's is signed by the identity and waits in the unsigned
tail for the next checkpoint of a holder of the ledger's keys, who checks that signature first.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from governance import entry_types as et
from governance.clock import utc_now

if TYPE_CHECKING:
    from governance.ledger import Ledger


def _plain(value: Any) -> Any:
    """A filter value as JSON: paths and enums as text, containers element-wise."""
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return value


def record_read(ledger: Ledger, what: dict[str, Any]) -> int:
    """Append one audit.read entry for a read described by `what`; return its seq.

    `what` holds `command` (e.g. "audit log --decrypt"), optionally `count` (entries the read
    covers), and the filter as its other members; None-valued filters are left out.
    """
    from governance.ledger import EntryDraft

    what = {k: v for k, v in what.items() if v is not None}
    payload = {"reader": ledger.reader, "command": str(what.pop("command", "")),
               "count": _plain(what.pop("count", None)), "filter": _plain(what), "read_at": utc_now()}
    draft = EntryDraft(et.AUDIT_READ, payload, et.AUDIT_SCOPE)
    return ledger.append([draft], sign=ledger.identity is None)[0]
