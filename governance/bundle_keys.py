"""The data keys an evidence bundle carries for one recipient (`fedgov audit export --wrap-to R.pub`).

Each data key of the exported entries that the exporter can open is wrapped to R's X25519
key as a grant (docs/ledger-format.md §4.3) and written to `wrapped_keys/<R's fingerprint>.json`
(§10.3); a key it cannot open (sealed against the operator, never granted to the exporting
identity, or shredded) is listed as not included, with the reason and how many of the bundle's
payloads it locks. Shredded keys are never included. The file gives R confidentiality, not
integrity: anyone can write grants to R. What R decrypts is bound to its entry by the entry's
AEAD (§4), and the entry to the signed tree (§10.4).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from governance.errors import VerificationError
from governance.identities import PublicIdentity
from governance.ledger.grants import GRANT_SIZE, KeyReader, grant_keys_to
from governance.verify.bundle import jcs_line

WRAPPED_KEYS_DIR = "wrapped_keys"
WRAPPED_KEYS_FORMAT = "fedgov-bundle-wrapped-keys"
WRAPPED_KEYS_VERSION = 1
SHREDDED = "shredded"  # the key was crypto-shredded: nobody can include it
SEALED = "sealed"  # sealed to auditors: the operator's keys do not open it
NOT_GRANTED = "not granted"  # the exporting identity holds no grant of it
REASONS = {SHREDDED: "crypto-shredded",  # how a missing key came to be missing: "its data key was …"
           SEALED: "sealed to auditors, which the operator's passphrase does not open (export with an auditor "
                   "identity, --identity)",
           NOT_GRANTED: "never granted to the exporting identity (written before it was registered, or its role does "
                        "not receive it)"}


def member_name(fingerprint: str) -> str:
    """The bundle member holding the keys wrapped to the identity with this fingerprint."""
    return f"{WRAPPED_KEYS_DIR}/{fingerprint}.json"


@dataclass(frozen=True)
class WrappedKeys:
    """The keys one bundle carries for one recipient, and those it could not carry."""

    recipient: PublicIdentity
    ledger_id: str
    exporter: dict[str, Any]  # who wrapped them: the exporter's reader (audit.read's `reader`)
    grants: dict[str, bytes]  # key id -> 92-byte grant to the recipient
    missing: dict[str, str]  # key id -> SHREDDED | SEALED | NOT_GRANTED
    payloads: dict[str, int]  # key id -> entries of the bundle encrypted under it

    @property
    def name(self) -> str:
        return member_name(self.recipient.fingerprint)

    def to_bytes(self) -> bytes:
        """The member's one byte form: JCS+LF (§10.3)."""
        return jcs_line({
            "exporter": self.exporter, "format": WRAPPED_KEYS_FORMAT, "ledger_id": self.ledger_id,
            "keys": [{"grant": base64.b64encode(g).decode("ascii"), "key_id": k, "payloads": self.payloads[k]}
                     for k, g in sorted(self.grants.items())],
            "not_included": [{"key_id": k, "payloads": self.payloads[k], "reason": r}
                             for k, r in sorted(self.missing.items())],
            "recipient": self.recipient.to_document(), "version": WRAPPED_KEYS_VERSION})

    def unreadable(self) -> Counter[str]:
        """How many of the bundle's payloads the recipient cannot read, by reason."""
        counts: Counter[str] = Counter()
        for key_id, reason in self.missing.items():
            counts[reason] += self.payloads[key_id]
        return counts


def wrap_bundle_keys(reader: KeyReader, exporter: dict[str, Any], recipient: PublicIdentity,
                     rows: Sequence[tuple]) -> WrappedKeys:
    """Wrap the data keys of `rows` (entry rows, ENTRY_COLUMNS order) that `reader` opens to `recipient`."""
    from governance.access_policy import AccessDenied
    from governance.ledger.envelope import KeyDestroyedError, UnknownDataKeyError

    payloads = dict(Counter(row[8] for row in rows))
    grants: dict[str, bytes] = {}
    missing: dict[str, str] = {}
    sealed_reason = NOT_GRANTED if exporter.get("fingerprint") else SEALED
    for key_id in sorted(payloads):
        try:
            [(_, grant)] = grant_keys_to(reader, recipient, [key_id])
        except UnknownDataKeyError:
            raise
        except KeyDestroyedError:
            missing[key_id] = SHREDDED
        except AccessDenied:
            missing[key_id] = sealed_reason
        else:
            grants[key_id] = grant
    return WrappedKeys(recipient, reader.ledger_id, exporter, grants, missing, payloads)


def read_wrapped_keys(files: Mapping[str, bytes], fingerprint: str) -> WrappedKeys | None:
    """The bundle's keys for the identity with this fingerprint, or None when it carries none for it."""
    name = member_name(fingerprint)
    if name not in files:
        return None
    try:
        doc = json.loads(files[name])
        if doc.get("format") != WRAPPED_KEYS_FORMAT or doc.get("version") != WRAPPED_KEYS_VERSION:
            raise ValueError("format")
        recipient = PublicIdentity.from_document(doc["recipient"], name)
        grants = {k["key_id"]: base64.b64decode(k["grant"], validate=True) for k in doc["keys"]}
        payloads = {k["key_id"]: int(k["payloads"]) for k in (*doc["keys"], *doc["not_included"])}
        missing = {k["key_id"]: k["reason"] for k in doc["not_included"]}
        wrapped = WrappedKeys(recipient, str(doc["ledger_id"]), dict(doc["exporter"]), grants, missing, payloads)
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as err:
        raise VerificationError(f"{name}: not a {WRAPPED_KEYS_FORMAT} file of version {WRAPPED_KEYS_VERSION} "
                                "(docs/ledger-format.md §10.3)") from err
    if recipient.fingerprint != fingerprint or wrapped.to_bytes() != files[name] \
            or any(len(g) != GRANT_SIZE for g in grants.values()):
        raise VerificationError(f"{name}: not in its one byte form, or not for identity {fingerprint} "
                                "(docs/ledger-format.md §10.3)")
    return wrapped


def carried_recipients(files: Mapping[str, bytes]) -> list[str]:
    """The fingerprints a bundle carries wrapped keys for."""
    prefix = f"{WRAPPED_KEYS_DIR}/"
    return sorted(n[len(prefix):-len(".json")] for n in files if n.startswith(prefix) and n.endswith(".json"))
