"""An evidence bundle as an EvidenceSource: its entries, and the payloads its wrapped keys open.

`fedgov audit subject NODE --bundle B.zip --identity R.identity` answers from here exactly
as it does from the workspace (governance/evidence.py): the entries are the bundle's (checked
first by the travelling verifier's code), and a payload is decrypted with the data key the
exporter wrapped to R (`wrapped_keys/<R's fingerprint>.json`, docs/ledger-format.md §10.3),
by the ledger's own decryption (envelope.open_entry, the AAD of §4). A payload whose key was
shredded reads as erased (None), as on the workspace; one whose key the exporter could not
open is refused in one line saying why. Reading a bundle is not recorded: the export was.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from governance.access_policy import POLICY_DOC, AccessDenied, check_read
from governance.bundle_keys import REASONS, SHREDDED, carried_recipients, read_wrapped_keys
from governance.errors import UsageError, VerificationError
from governance.evidence import EvidenceEntry, stored_spellings
from governance.identities import AUDITOR, Identity, PublicIdentity
from governance.ledger import Entry
from governance.ledger.envelope import open_entry
from governance.ledger.grants import open_grant
from governance.verify.bundle import Bundle


class BundleSource:
    """A verified bundle read as `identity`, with the data keys wrapped to it."""

    def __init__(self, path: Path, identity: Identity) -> None:
        from governance.bundle_records import IDENTITIES_DIR

        bundle = Bundle(path)
        self.description = f"bundle {path}"
        self.identity = identity
        self.ledger_id = bundle.meta()["ledger_id"]
        wrapped = read_wrapped_keys(bundle.files, identity.fingerprint)
        if wrapped is None:
            carried = carried_recipients(bundle.files)
            held = f"it carries keys for {', '.join(carried)}" if carried else "it carries none"
            raise UsageError(f"{path} carries no data keys wrapped to identity {identity.name} ({identity.fingerprint}),"
                             f" so its payloads cannot be read ({held}); ask the exporter for `fedgov audit export "
                             f"--wrap-to {identity.name}.pub`")
        if wrapped.ledger_id != self.ledger_id:
            raise VerificationError(f"{wrapped.name}: its keys are for ledger {wrapped.ledger_id}, not this bundle's "
                                    f"{self.ledger_id}")
        self.wrapped = wrapped
        roles = [PublicIdentity.from_document(bundle.json_object(name), name).role for name in sorted(bundle.files)
                 if name.startswith(f"{IDENTITIES_DIR}/")]
        self.policy_in_force = AUDITOR in roles
        self._entries = [Entry(*row) for row in bundle.entries()]
        self._aeads: dict[str, AESGCM] = {}

    def entries(self, entry_types: Sequence[str]) -> Sequence[EvidenceEntry]:
        wanted = set(stored_spellings(entry_types))
        return [e for e in self._entries if e.entry_type in wanted]

    def payload(self, entry: Any) -> dict[str, Any] | None:
        what = f"entry seq {entry.seq}"
        check_read(self.identity.role, entry.entry_type, entry.node_id, self.identity.node, self.policy_in_force)
        aead = self._aeads.get(entry.key_id)
        if aead is None:
            grant = self.wrapped.grants.get(entry.key_id)
            if grant is None:
                reason = self.wrapped.missing.get(entry.key_id)
                if reason == SHREDDED:
                    return None
                if reason is None:
                    raise VerificationError(f"{what}: {self.wrapped.name} does not mention its data key {entry.key_id} "
                                            "(the bundle was altered)")
                raise AccessDenied(f"{what} ({entry.entry_type}): its data key is not in the bundle: it was "
                                   f"{REASONS.get(reason, reason)} ({POLICY_DOC})")
            aead = AESGCM(open_grant(self.identity, grant, ledger_id=self.ledger_id, key_id=entry.key_id))
            self._aeads[entry.key_id] = aead
        return open_entry(aead, self.ledger_id, entry.seq, entry.entry_type, entry.key_id, entry.ciphertext, what)
