"""Registered identities and the writers' batch authenticators (docs/ledger-format.md §4, §5 rule 3).

An identity is registered by the ledger's signing key: `fedgov_identities` holds its public
document and the signature, so anyone holding the pinned key can check the list and no
database holder can add an auditor who would then receive data keys.

Every batch appended once identities exist carries an authenticator over its leaf hashes
(`fedgov_batch_auth`): an HMAC under a key derived from the checkpoint signing seed when a
holder of the ledger's keys wrote it, or the Ed25519 signature of the identity that wrote it
(an auditor's `audit.read`). The signer checks it before signing rows it cannot decrypt.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from governance.errors import VerificationError
from governance.identities import AUDITOR, PublicIdentity
from governance.ledger.signed_head import SigningRefusedError
from governance.verify.canonical import canonical_bytes

REGISTRATION_PURPOSE = "fedgov-identity-registration-v2"
BATCH_PURPOSE = "fedgov-batch-v1"
BATCH_HMAC_INFO = b"fedgov-batch-hmac-v1"
LEDGER_WRITER = "ledger"  # the `writer` of a batch a holder of the ledger's keys wrote


AUDIT_VERIFY_HINT = "run `fedgov audit verify` and investigate"


class IdentityTableEdited(SigningRefusedError):
    """`fedgov_identities` does not match the signed `identity.registered` entries: nobody reads, writes or signs."""


@dataclass(frozen=True)
class Registered:
    public: PublicIdentity
    seq: int  # its identity.registered entry
    created: str
    signature: bytes = b""  # the ledger's signature over registration_message (§4.2)


@dataclass(frozen=True)
class RoleState:
    """The identities this ledger registered (each checked against the ledger's key), by fingerprint."""

    identities: dict[str, Registered] = field(default_factory=dict)

    @property
    def in_force(self) -> bool:
        """Whether the read policy is in force: at least one auditor is registered."""
        return any(r.public.role == AUDITOR for r in self.identities.values())

    def by_name(self, name: str) -> Registered | None:
        return next((r for r in self.identities.values() if r.public.name == name), None)


def registration_message(ledger_id: str, public: PublicIdentity, seq: int) -> bytes:
    """What the ledger's signing key signs to register an identity: JCS of identity, ledger_id, purpose, seq.

    `seq` is the registration's own `identity.registered` entry: a row signed in a copy of the
    workspace, or moved to another seq, fails (docs/ledger-format.md §4.2).
    """
    return canonical_bytes({"identity": public.to_document(), "ledger_id": ledger_id,
                            "purpose": REGISTRATION_PURPOSE, "seq": seq})


def load_roles(rows: list[Any], ledger_id: str, ledger_key: Any) -> RoleState:
    """Registered identities from `fedgov_identities` rows, each signature checked with `ledger_key`.

    `ledger_key` is an Ed25519PublicKey: the writer's own, or the workspace's pinned trusted key.
    A row the key did not sign was inserted or altered in the database: one error, nothing trusted.
    """
    import json

    from cryptography.exceptions import InvalidSignature

    found: dict[str, Registered] = {}
    for row in rows:
        m = row._mapping
        where = f"registered identity {m['fingerprint']}"
        try:
            public = PublicIdentity.from_document(json.loads(m["document"]), where)
            ledger_key.verify(bytes(m["signature"]), registration_message(ledger_id, public, int(m["seq"])))
        except (InvalidSignature, ValueError, TypeError) as err:
            raise IdentityTableEdited(f"{where} in fedgov_identities is not signed by this ledger's key for its seq "
                                      f"{m['seq']}: the identity table was edited in the database (inserted, "
                                      f"altered or moved); {AUDIT_VERIFY_HINT}") from err
        except VerificationError:
            raise
        except Exception as err:  # noqa: BLE001 - an IdentityFormatError from a hand-made row: same verdict
            raise IdentityTableEdited(f"{where} in fedgov_identities (seq {m['seq']}) is malformed: the identity "
                                      f"table was edited in the database; {AUDIT_VERIFY_HINT}") from err
        if public.fingerprint != m["fingerprint"]:
            raise IdentityTableEdited(f"{where} in fedgov_identities (seq {m['seq']}) names another identity's "
                                      f"fingerprint: the identity table was edited in the database; {AUDIT_VERIFY_HINT}")
        found[public.fingerprint] = Registered(public, int(m["seq"]), str(m["created"]), bytes(m["signature"]))
    return RoleState(found)


def check_rows_match_entries(roles: RoleState, entry_seqs: list[int]) -> None:
    """Refuse unless the rows are, one for one by seq, the `identity.registered` entries.

    `entry_type` is a plaintext index field covered by each leaf hash, so anyone can list the
    entries; a row deleted (an auditor silently dropped) or added (a recipient registered in a
    copy) shows here. `fedgov audit verify` checks the entries themselves against the checkpoints.
    """
    rows = sorted(r.seq for r in roles.identities.values())
    entries = sorted(entry_seqs)
    for seq in entries:
        if seq not in rows:
            raise IdentityTableEdited(f"identity.registered entry seq {seq} has no row in fedgov_identities: the "
                                      f"identity table was edited in the database (a registration deleted); "
                                      f"{AUDIT_VERIFY_HINT}")
    for seq in rows:
        if rows.count(seq) > 1 or seq not in entries:
            raise IdentityTableEdited(f"the fedgov_identities row of seq {seq} has no identity.registered entry of "
                                      f"its own: the identity table was edited in the database (a registration made "
                                      f"elsewhere); {AUDIT_VERIFY_HINT}")


def check_row_matches_payload(registered: Registered, payload: dict[str, Any]) -> None:
    """Refuse unless a row holds what its entry's payload says (for readers of identity.registered payloads)."""
    import base64

    if payload.get("identity") != registered.public.to_document() or \
            payload.get("ledger_signature") != base64.b64encode(registered.signature).decode("ascii"):
        raise IdentityTableEdited(f"the fedgov_identities row of seq {registered.seq} differs from its "
                                  f"identity.registered entry's payload: the identity table was edited in the "
                                  f"database; {AUDIT_VERIFY_HINT}")


def batch_members(ledger_id: str, first: int, count: int, leaves_hex: str, writer: str) -> dict[str, Any]:
    """The members of a batch message; `leaves_hex` is the hex SHA-256 of the batch's concatenated leaf hashes."""
    return {"count": count, "first": first, "leaves": leaves_hex, "ledger_id": ledger_id, "purpose": BATCH_PURPOSE,
            "writer": writer}


def batch_message(ledger_id: str, first: int, leaves: list[bytes], writer: str) -> bytes:
    """JCS of {count, first, leaves: hex SHA-256 of the concatenated leaf hashes, ledger_id, purpose, writer}."""
    return canonical_bytes(batch_members(ledger_id, first, len(leaves), hashlib.sha256(b"".join(leaves)).hexdigest(),
                                         writer))


def batch_hmac_key(signing_seed: bytes) -> bytes:
    """HKDF-SHA256(the 32-byte signing seed, no salt, info "fedgov-batch-hmac-v1"), 32 bytes."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=BATCH_HMAC_INFO).derive(signing_seed)


def batch_hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def vouched(payload: dict[str, Any], writer: dict[str, Any] | str) -> dict[str, Any]:
    """An audit.read payload as shown: its `reader` as the batch authenticator names the writer.

    The payload's `reader` is what the writer put there; the authenticator (an identity's
    Ed25519 signature, or the ledger's HMAC for the operator) says who wrote the row. When they
    differ, or the authenticator does not check, `reader` becomes the authenticated writer (or
    null), the claim moves to `claimed_reader` and `reader_mismatch` says why (docs/access-policy.md).
    """
    claimed = payload.get("reader")
    if isinstance(writer, dict) and claimed == writer:
        return payload
    flagged = dict(payload)
    flagged["claimed_reader"] = claimed
    flagged["reader"] = writer if isinstance(writer, dict) else None
    who = claimed.get("who") if isinstance(claimed, dict) else claimed
    flagged["reader_mismatch"] = (f"the payload names {who!r} as reader but the row was written by "
                                  f"{writer['who']!r}" if isinstance(writer, dict) else
                                  f"the payload names {who!r} as reader and {writer}")
    return flagged
