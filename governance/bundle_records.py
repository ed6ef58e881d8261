"""The records an evidence bundle carries beside its signed entries: consent, lineage, identities.

The exporter holds the keys (it reads payloads); the bundle's reader does not need them to
see which consent records were in force for the exported entries and which model versions
were built from them (docs/ledger-format.md §10). These files are covered by the manifest,
not by a signature: each record names the seq of the entry it was read from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from governance import entry_types as et
from governance.consent import ConsentGranted, ConsentWithdrawn, consent_event_from_dict
from governance.errors import VerificationError
from governance.ledger import Entry, KeyDestroyedError, Ledger
from governance.lineage import to_prov_json
from governance.lineage_store import load_operators, load_versions
from governance.verify.bundle import jcs_line

CONSENT_FORMAT = "fedgov-bundle-consent"
IDENTITIES_DIR = "identities"


def consent_document(ledger: Ledger, entries: Sequence[tuple], complete: bool) -> dict[str, Any]:
    """The consent records in force for `entries`: of the nodes they name (or every node, for a complete bundle),
    granted no later than the last of them; withdrawals as recorded; shredded (unreadable) ones listed as erased."""
    principals = None if complete else _principals(ledger, entries)
    last = max(row[2] for row in entries)
    events = sorted([*ledger.query(entry_type=et.CONSENT_GRANTED), *ledger.query(entry_type=et.CONSENT_WITHDRAWN)],
                    key=lambda e: e.seq)
    ledger.prefetch_keys(events)
    records: dict[str, dict[str, Any]] = {}
    erased = []
    for entry in events:
        if (principals is not None and entry.node_id not in principals) or entry.timestamp > last:
            continue
        try:
            payload = dict(ledger.read_payload(entry))
        except KeyDestroyedError:
            erased.append({"node_id": entry.node_id, "seq": entry.seq})
            continue
        payload.pop("actor", None)
        event = consent_event_from_dict(payload)
        if isinstance(event, ConsentGranted) and event.record.record_id not in records:
            records[event.record.record_id] = {**event.record.to_dict(), "granted_seq": entry.seq,
                                               "withdrawn_seq": None, "withdrawal_reason": None}
        elif isinstance(event, ConsentWithdrawn) and event.record_id in records \
                and records[event.record_id]["withdrawn_seq"] is None:
            records[event.record_id].update(withdrawn_at=event.withdrawn_at, withdrawn_seq=entry.seq,
                                            withdrawal_reason=event.reason)
    ordered = sorted(records.values(), key=lambda r: (r["principal"], r["granted_seq"]))
    return {"erased": erased, "format": CONSENT_FORMAT, "records": ordered}


def _principals(ledger: Ledger, entries: Sequence[tuple]) -> set[str]:
    """The nodes the entries name: in their node_id, or among a round's candidates (excluded ones too)."""
    found = {row[5] for row in entries if row[5]}
    selections = [Entry(*row) for row in entries if row[1] == et.ROUND_SELECTION]
    ledger.prefetch_keys(selections)
    for entry in selections:
        try:
            found.update(ledger.read_payload(entry).get("candidates", []))
        except KeyDestroyedError:
            continue
    return found


def lineage_document(ledger: Ledger, entries: Sequence[tuple], complete: bool) -> dict[str, Any]:
    """W3C PROV-JSON of the model versions of the runs the entries belong to (every run, for a complete bundle)."""
    runs = {row[3] for row in entries if row[3]}
    try:
        versions = [v for v in load_versions(ledger) if complete or v.run_id in runs]
        operators = load_operators(ledger)
    except (KeyError, TypeError, AttributeError) as err:
        raise VerificationError(f"the lineage cannot be built: a run's payload lacks {err} (not written by a governed "
                                "run); nothing was exported") from err
    named = {operators[run] for run in runs if run in operators}
    return to_prov_json(versions, operator=named.pop() if len(named) == 1 else None)


def identity_files(ledger: Ledger) -> dict[str, bytes]:
    """The registered identities as `identities/<fingerprint>.pub`: who could be granted which data keys.

    Each is the public document (§8.1) with its registration beside it (`registered_seq`,
    `registered_at`, and the ledger's `ledger_signature` of §4.2, which anyone holding the
    pinned key can check), JCS+LF (docs/ledger-format.md §10.3). None for a ledger without identities.
    """
    import base64

    registered = ledger.roles().identities  # each row's signature checked with the ledger's key
    if not registered:
        return {}
    with ledger.store.read() as conn:
        signatures = {row._mapping["fingerprint"]: bytes(row._mapping["signature"])
                      for row in ledger.store.identity_rows(conn)}
    return {f"{IDENTITIES_DIR}/{fp}.pub": jcs_line({
        **r.public.to_document(), "ledger_signature": base64.b64encode(signatures[fp]).decode("ascii"),
        "registered_at": r.created, "registered_seq": r.seq}) for fp, r in sorted(registered.items())}
