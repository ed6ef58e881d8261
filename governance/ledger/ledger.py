"""The Ledger: one safe way to append, checkpoint, read, shred and rotate.

Key handling, nonces and associated data stay inside; callers hand in EntryDrafts and
get sequence numbers back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Connection

from governance import entry_types as et
from governance.clock import utc_now
from governance.deferred_signals import signals_deferred
from governance.entry_types import SYSTEM_SCOPE
from governance.errors import UsageError, VerificationError
from governance.keystore import (ENV_PASSPHRASE, KeyMaterial, keys_from_env, read_keystore,
                                 write_keystore)
from governance.ledger import envelope, merkle
from governance.ledger.checkpoint import public_key_bytes, sign_checkpoint, verify_checkpoint
from governance.ledger.entry import Entry, EntryDraft
from governance.ledger.signed_head import (SigningRefusedError, advance_head, check_before_signing, parse_head,
                                          read_head)
from governance.ledger.store import LedgerStore, StoreError, display_url
from governance.ledger.tree_cache import CacheDiff, compare, node_order, recompute_tree, repair_rows
from governance.ledger.roles import (LEDGER_WRITER, Registered, RoleState, batch_hmac, batch_hmac_key, batch_message,
                                     check_row_matches_payload, check_rows_match_entries, load_roles,
                                     registration_message, vouched)
from governance.ledger.receipts import Receipt
from governance.ledger.sealed_rows import CHUNK, DraftColumns, seal_rows
from governance.ledger.unsigned_tail import OwnBatch, TailVouch, check_unsigned_tail
from governance.private_files import make_private_dir, write_atomic
from governance.verify.canonical import canonical_bytes
from governance.verify.checkpoint import Checkpoint, CheckpointError, VerifierKey, parse_checkpoint
from governance.verify.leaf import LeafEncoder
from governance.verify.merkle import Frontier, ProofError, verify_consistency
from governance.workspace import Workspace

if TYPE_CHECKING:
    from governance.identities import Identity, PublicIdentity

__all__ = ["Ledger", "SYSTEM_SCOPE", "create_ledger", "create_workspace"]


class Ledger:
    """An open ledger. Writers hold keys; a read-only ledger holds none."""

    def __init__(self, ws: Workspace, store: LedgerStore, keys: KeyMaterial | None,
                 passphrase: str | None = None, identity: Identity | None = None) -> None:
        self.workspace = ws
        self.store = store
        self._keys = keys
        self._passphrase = passphrase
        self._identity = identity  # an identity reader (and writer of its own audit.read), holding no ledger key
        self._roles: RoleState | None = None
        self._roles_key: tuple[int, int | None] | None = None  # (identity.registered count, first seq) it was read at
        self._sealed: dict[str, tuple[str, AESGCM, frozenset[str]]] = {}  # scope -> sealed key this process made
        self._raw: dict[str, bytes] = {}  # key id -> data key bytes opened for grants
        self.ledger_id = store.meta["ledger_id"]
        self.origin = store.meta["origin"]
        self._scope_keys: dict[str, tuple[str, AESGCM]] = {}
        self._aeads: dict[str, AESGCM] = {}
        self._frontier: tuple[Frontier, bytes] | None = None
        self._own: list[OwnBatch] = []  # batches this process committed and no checkpoint covers yet
        self._pending: list[OwnBatch] = []  # batches of the open transaction
        # an identity's receipts (governance/ledger/receipts.py): of its committed batches, then of the open transaction
        self.receipts: list[Receipt] = []
        self._pending_receipts: list[Receipt] = []
        self._shredding: dict[str, AESGCM] = {}  # keys destroyed in the open transaction, for the tail check

    def __repr__(self) -> str:
        who = f", identity={self._identity.fingerprint}" if self._identity else ""
        return f"Ledger({self.origin!r}, writer={self._keys is not None}{who})"

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, ws: Workspace, passphrase: str | None = None, *, write: bool = True,
             keys: KeyMaterial | None = None) -> Ledger:
        """Open with the keys: `keys` > `passphrase` > FEDGOV_KEK/FEDGOV_SIGNING_KEY > FEDGOV_PASSPHRASE.

        `write=False` opens the database read-only: payloads can be read, nothing appended,
        and a read-only workspace or database is enough. A writer reads the keystore under
        the workspace lock and first finishes any KEK replacement a crash interrupted.
        """
        import os

        if keys is not None:
            return cls._settled(cls._with_store(ws, keys, None, write))
        keys = None if passphrase else keys_from_env()
        if keys is None:
            passphrase = passphrase or os.environ.get(ENV_PASSPHRASE)
            if not passphrase:
                raise UsageError(f"no passphrase: set {ENV_PASSPHRASE}, pass --passphrase-file, "
                                 "or set FEDGOV_KEK and FEDGOV_SIGNING_KEY")
        if not write or keys is not None:
            keys = keys or read_keystore(ws.keystore_path, passphrase or "")
            return cls._settled(cls._with_store(ws, keys, passphrase, write))
        with ws.lock():
            ledger = cls._with_store(ws, read_keystore(ws.keystore_path, passphrase or ""), passphrase, write)
            try:
                ws.tighten()
                ledger._reconcile_keystore(ledger._require_keys())
            except BaseException:
                ledger.close()
                raise
        return cls._settled(ledger)

    @staticmethod
    def _settled(ledger: Ledger) -> Ledger:
        """A writer first closes, as `abandoned`, the runs whose every process is gone (see open_runs)."""
        if ledger.store.readonly:
            return ledger
        from governance.open_runs import close_abandoned  # it writes through this class

        try:
            close_abandoned(ledger, ledger.workspace.path)
        except BaseException:
            ledger.close()
            raise
        return ledger

    @classmethod
    def _with_store(cls, ws: Workspace, keys: KeyMaterial, passphrase: str | None, write: bool) -> Ledger:
        store = LedgerStore.open(ws.db_url, readonly=not write)
        if store.meta["public_key"] != base64.b64encode(public_key_bytes(keys.signing_key)).decode():
            store.close()
            raise UsageError("these keys do not belong to this ledger (signing key differs)")
        ledger = cls(ws, store, keys, passphrase)
        try:
            ledger.roles()  # an edited identity table refuses here, before anything is read or written
        except BaseException:
            ledger.close()
            raise
        return ledger

    @classmethod
    def open_readonly(cls, ws: Workspace) -> Ledger:
        """Open without any secret, read-only: for verification, listing and proofs."""
        return cls(ws, LedgerStore.open(ws.db_url, readonly=True), None)

    @classmethod
    def open_as(cls, ws: Workspace, identity: Identity, *, write: bool = False) -> Ledger:
        """Open as a registered identity: it reads the payloads granted to it, and no ledger key is held.

        `write=True` lets it append its own `audit.read` entries (signed by the identity, left in
        the unsigned tail until the next checkpoint of a holder of the ledger's keys).
        """
        ledger = cls(ws, LedgerStore.open(ws.db_url, readonly=not write), None, identity=identity)
        try:
            registered = ledger.roles().identities.get(identity.fingerprint)
            if registered is None:
                raise UsageError(f"identity {identity.name} ({identity.fingerprint}) is not registered in this ledger: "
                                 f"the operator registers it with `fedgov identity add {identity.name}.pub`")
        except BaseException:
            ledger.close()
            raise
        return ledger

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _require_keys(self) -> KeyMaterial:
        if self._keys is None:
            if self._identity is not None:
                raise UsageError(f"identity {self._identity.name} holds no ledger key: this needs the keystore "
                                 "passphrase (the operator)")
            raise UsageError("this ledger was opened read-only: open it with the keystore passphrase")
        return self._keys

    # -- roles and identities (governance/access_policy.py, docs/access-policy.md) ------------

    @property
    def identity(self) -> Identity | None:
        """The identity this ledger was opened as, or None for the operator's keys."""
        return self._identity

    @property
    def role(self) -> str:
        """The role reading: the identity's, or `operator` for whoever holds the passphrase or the KEK."""
        from governance.identities import OPERATOR

        return self._identity.role if self._identity is not None else OPERATOR

    @property
    def reader(self) -> dict[str, Any]:
        """Who reads, as an audit.read entry names them."""
        if self._identity is None:
            return {"who": "operator (passphrase)", "role": "operator", "name": None, "fingerprint": None}
        return {"who": self._identity.public.label, "role": self._identity.role, "name": self._identity.name,
                "fingerprint": self._identity.fingerprint}

    def _ledger_public_key(self) -> Any:
        """The key registrations must be signed by: the writer's own, else the workspace's pinned one."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        if self._keys is not None:
            return self._keys.signing_key.public_key()
        from governance.ledger.verify import load_trusted_keys

        pinned = [k for k in load_trusted_keys(self.workspace.trust_path) if k.name == self.origin]
        if not pinned:
            raise UsageError(f"{self.workspace.trust_path} pins no key named {self.origin}: cannot check this ledger's "
                             "registered identities")
        return Ed25519PublicKey.from_public_bytes(pinned[0].public_key)

    def _role_state(self, conn: Connection) -> RoleState:
        """Registered identities, re-read when an identity.registered entry was added since.

        The rows must be, one for one by seq, the identity.registered entries, each signed for its
        seq, and, where this reader can open those payloads, hold what the payloads say
        (docs/ledger-format.md §4.2): otherwise IdentityTableEdited, and nothing is read or written.
        """
        key = self.store.first_registration(conn)
        if self._roles is None or key != self._roles_key:
            rows = self.store.identity_rows(conn)
            roles = load_roles(rows, self.ledger_id, self._ledger_public_key()) if rows else RoleState()
            entries = self.store.query(conn, et.IDENTITY_REGISTERED) if key[0] else []
            check_rows_match_entries(roles, [e.seq for e in entries])
            self._check_registration_payloads(conn, roles, entries)
            self._roles = roles
            self._roles_key = key
        return self._roles

    def _check_registration_payloads(self, conn: Connection, roles: RoleState, entries: list[Entry]) -> None:
        """Compare each row with its entry's payload, when this reader holds the key (KEK, or a grant)."""
        from governance.ledger.grants import GrantError, open_grant

        if self._keys is None and self._identity is None:
            return  # no secret: the signatures and the one-for-one seqs are what can be checked
        by_seq = {r.seq: r for r in roles.identities.values()}
        aeads: dict[str, AESGCM | None] = {}
        for entry in entries:
            if entry.key_id not in aeads:
                data_key = None
                if self._identity is not None:
                    grant = self.store.grants_to(conn, self._identity.fingerprint, [entry.key_id]).get(entry.key_id)
                    if grant is not None:
                        with suppress(GrantError):
                            data_key = open_grant(self._identity, grant, ledger_id=self.ledger_id, key_id=entry.key_id)
                else:
                    row = self.store.data_key(conn, entry.key_id)
                    if row is not None and row.wrapped_key is not None:
                        data_key = envelope.unwrap(self._kek_for(row.kek_id), row.wrapped_key)
                aeads[entry.key_id] = AESGCM(data_key) if data_key is not None else None
            aead = aeads[entry.key_id]
            if aead is None:
                continue
            payload = envelope.open_entry(aead, self.ledger_id, entry.seq, entry.entry_type, entry.key_id,
                                          entry.ciphertext, f"entry seq {entry.seq}")
            check_row_matches_payload(by_seq[entry.seq], payload)

    def roles(self) -> RoleState:
        """The identities this ledger registered (signatures checked), by fingerprint."""
        with self.store.read() as conn:
            return self._role_state(conn)

    @property
    def policy_in_force(self) -> bool:
        """Whether the read policy is in force: the ledger has at least one auditor (read once, then as appended)."""
        return (self._roles if self._roles is not None else self.roles()).in_force

    def check_may_read(self, entry: Entry) -> None:
        """AccessDenied (one line: role, entry type, policy doc) unless this reader may read the entry's payload."""
        from governance.access_policy import check_read

        check_read(self.role, entry.entry_type, entry.node_id, self._identity.node if self._identity else None,
                   self.policy_in_force)

    def _grants_for(self, conn: Connection, roles: RoleState, scope: str, sealed: bool, key_id: str,
                    data_key: bytes, when: str) -> list[tuple[str, str, bytes, str]]:
        """Grant rows of a data key to every registered identity the policy lets receive it."""
        from governance.access_policy import receives
        from governance.ledger.grants import wrap_to

        return [(key_id, fp, wrap_to(r.public.x25519, data_key, ledger_id=self.ledger_id, key_id=key_id), when)
                for fp, r in roles.identities.items() if receives(r.public.role, r.public.node, scope, sealed)]

    def register_identity(self, public: PublicIdentity, actor: str) -> tuple[int, int]:
        """Register an identity: sign it, record `identity.registered`, grant it the data keys the policy allows.

        Returns (the entry's seq, how many data keys were granted). Sealed data keys are never
        wrapped under the KEK, so the operator cannot grant them: an identity registered later
        reads the sealed payloads written after its registration (an auditor can pass older
        ones on: `grants.grant_keys_to`). Signed in the same transaction, like every command that writes.
        """
        import base64 as b64

        from governance.access_policy import receives
        from governance.names import check_name

        keys = self._require_keys()
        check_name(actor, "--actor")
        with self._transaction() as conn:
            self.store.create_role_tables(conn)
            roles = self._role_state(conn)
            if public.fingerprint in roles.identities:
                raise UsageError(f"identity {public.name} ({public.fingerprint}) is already registered")
            if roles.by_name(public.name) is not None:
                raise UsageError(f"an identity named {public.name!r} is already registered (fingerprint "
                                 f"{roles.by_name(public.name).public.fingerprint}); names are unique")
            when = utc_now()
            seq = self.store.size(conn)  # the seq _append_in gives the entry: the signature binds it
            signature = keys.signing_key.sign(registration_message(self.ledger_id, public, seq))
            payload = {"identity": public.to_document(), "actor": actor, "registered_at": when,
                       "ledger_signature": b64.b64encode(signature).decode("ascii")}
            if self._append_in(conn, [EntryDraft(et.IDENTITY_REGISTERED, payload, SYSTEM_SCOPE)])[0] != seq:
                raise StoreError("identity.registered was not given the seq its registration signature names")
            self.store.insert_identity(conn, {"fingerprint": public.fingerprint, "document":
                                              canonical_bytes(public.to_document()).decode("utf-8"),
                                              "signature": signature, "seq": seq, "created": when})
            grants = []
            for row in self.store.all_live_keys(conn):
                if receives(public.role, public.node, row.scope, False):
                    data_key = envelope.unwrap(self._kek_for(row.kek_id), row.wrapped_key)
                    grants.append(self._grants_for(conn, RoleState({public.fingerprint: Registered(public, seq, when,
                                                                                                   signature)}),
                                                   row.scope, False, row.key_id, data_key, when)[0])
            self.store.insert_grants(conn, grants)
            self._roles = None
            self._sealed.clear()  # recipients changed: the next sealed batch makes new keys
            note = self._checkpoint_in(conn)
        advance_head(self.workspace, note)
        return seq, len(grants)

    def identities(self) -> list[Registered]:
        """Registered identities in registration order."""
        return sorted(self.roles().identities.values(), key=lambda r: r.seq)

    @property
    def verifier_key(self) -> VerifierKey:
        """The ledger's own public key as recorded in the DB (verify trusts the pinned one instead)."""
        return VerifierKey(self.origin, base64.b64decode(self.store.meta["public_key"]))

    def _own_key(self) -> VerifierKey:
        """The verifier key of the signing key this writer holds: what the signer trusts."""
        return VerifierKey(self.origin, public_key_bytes(self._require_keys().signing_key))

    # -- keys ----------------------------------------------------------------------------------

    def _kek_for(self, kek_id: str) -> bytes:
        for attempt in range(3):  # re-read the keystore while other processes rotate (twice covers two overlaps)
            keys = self._require_keys()
            for kek in (keys.kek, *keys.old_keks):
                if envelope.kek_id(kek) == kek_id:
                    return kek
            if attempt == 2 or not self._reload_keys():
                break
        raise envelope.KeyUnwrapError(f"no key-encryption key with id {kek_id} in the keystore")

    def _reload_keys(self) -> bool:
        """Re-read the keystore (another process rotated the KEK); False when keys came from the env."""
        if self._passphrase is None or (self._keys is not None and self._keys.from_env):
            return False
        self._keys = read_keystore(self.workspace.keystore_path, self._passphrase)
        return True

    def _current_kek(self, conn: Connection) -> bytes:
        """The KEK new data keys are wrapped under: the one the database names, never a rotated-away one."""
        keys = self._require_keys()
        wanted = self.store.meta_value(conn, "kek_id")
        if wanted is None or envelope.kek_id(keys.kek) == wanted:
            return keys.kek
        if self._reload_keys() and envelope.kek_id(self._require_keys().kek) == wanted:
            return self._require_keys().kek
        raise UsageError(f"the key-encryption key was rotated (now {wanted}) and this process cannot load it: "
                         "restart it with the current keystore, or the current FEDGOV_KEK")

    def _reconcile_keystore(self, keys: KeyMaterial) -> None:
        """Make the keystore hold exactly the KEK the database uses; call under the workspace lock.

        `keys` is the keystore as just read under that lock. A KEK replacement writes the
        keystore twice, with the old KEK beside the new one until the database commits. If it
        died in between, the old KEK would still open copies of the data keys it wrapped,
        shredded ones included: drop it. If the database never committed, the new KEK wraps
        nothing yet: go back to the old one. Temp files a crash left behind go too, since a
        temp keystore holds KEKs as well.

        The database decides which KEK stays, so it must be the database this workspace
        signed: the keystore is settled only while the database still holds the signed head,
        and `fedgov_meta.kek_id` must name the KEK that the newest KEK replacement entry
        (authenticated by its AEAD) installed. Otherwise nothing is dropped, and the signer
        and `fedgov audit verify` report the tampering.
        """
        for leftover in (*self.workspace.path.glob("keystore.json.*.tmp"),
                         *self.workspace.path.glob("latest_checkpoint.*.tmp")):
            leftover.unlink(missing_ok=True)
        self._keys = keys
        if keys.from_env or self._passphrase is None:
            return
        with self.store.read() as conn:
            in_use = self.store.kek_ids_in_use(conn)
            wanted = self.store.meta_value(conn, "kek_id")
            if not self._holds_signed_head(conn):
                return
        every = (keys.kek, *keys.old_keks)
        if wanted is None:  # a ledger that has not replaced its KEK since fedgov 0.2: keep what is in use
            current, kept = keys.kek, tuple(k for k in every[1:] if envelope.kek_id(k) in in_use)
        else:
            recorded = self._installed_kek_id()
            if recorded is not None and recorded != wanted:
                raise VerificationError(f"fedgov_meta.kek_id names key-encryption key {wanted}, but the last KEK "
                                        f"replacement in the ledger installed {recorded}: the meta row was edited")
            current = next((k for k in every if envelope.kek_id(k) == wanted), None)
            if current is None:
                raise UsageError(f"the ledger names key-encryption key {wanted}, which this keystore does not hold: "
                                 "use the newest backup of keystore.json (never one from before a shred)")
            kept = ()
        if current != keys.kek or kept != keys.old_keks:
            keys = KeyMaterial(kek=current, signing_seed=keys.signing_seed, old_keks=kept)
            write_keystore(self.workspace.keystore_path, keys, self._passphrase)
            self._keys = keys

    def _holds_signed_head(self, conn: Connection) -> bool:
        """Whether the database still holds, byte for byte, the checkpoint this workspace signed last."""
        head = read_head(self.workspace)
        if head is None:
            return True  # nothing to hold it to (a workspace made before 0.2): the signer refuses later anyway
        try:
            size = parse_checkpoint(head).size
        except CheckpointError:
            return False
        return any(row["note"] == head for row in self.store.checkpoints_of_size(conn, size))

    def _installed_kek_id(self) -> str | None:
        """`new_kek_id` of the newest KEK replacement entry, read through its AEAD; None if there is none."""
        types = (*et.stored_names(et.KEK_ROTATED), *et.stored_names(et.KEY_DESTROYED))
        for entry in reversed(self.query_types(types)):
            try:
                payload = self.read_payload(entry)
            except (envelope.KeyDestroyedError, envelope.KeyUnwrapError, VerificationError):
                return None
            if "new_kek_id" in payload:
                return str(payload["new_kek_id"])
        return None

    def _keys_for_scopes(self, conn: Connection, scopes: set[str],
                         roles: RoleState | None = None) -> dict[str, tuple[str, AESGCM]]:
        """Live data key per scope, creating missing ones (granted to the identities the policy lets read them)."""
        found: dict[str, tuple[str, AESGCM]] = {}
        for row in self.store.live_keys_for(conn, sorted(scopes)):
            cached = self._scope_keys.get(row.scope)
            if cached and cached[0] == row.key_id:
                found[row.scope] = cached
            else:
                aead = AESGCM(envelope.unwrap(self._kek_for(row.kek_id), row.wrapped_key))
                found[row.scope] = (row.key_id, aead)
        missing = scopes - found.keys()
        kek = self._current_kek(conn) if missing else b""
        for scope in missing:
            data_key, key_id = envelope.new_key(), envelope.new_key_id()
            when = utc_now()
            self.store.insert_data_key(conn, {
                "key_id": key_id, "scope": scope, "wrapped_key": envelope.wrap(kek, data_key),
                "kek_id": envelope.kek_id(kek), "created": when})
            if roles is not None and roles.identities:
                self.store.insert_grants(conn, self._grants_for(conn, roles, scope, False, key_id, data_key, when))
            found[scope] = (key_id, AESGCM(data_key))
        self._scope_keys.update(found)
        return found

    def _sealed_keys_for(self, conn: Connection, scopes: set[str], roles: RoleState) -> dict[str, tuple[str, AESGCM]]:
        """A sealed data key per scope: wrapped only to the identities the policy lets read sealed payloads.

        Never wrapped under the KEK: once this process is gone, no holder of the ledger's keys
        can open it. A process keeps its key while it is live and the recipients are unchanged.
        """
        from governance.access_policy import receives

        wanted = {scope: frozenset(fp for fp, r in roles.identities.items()
                                   if receives(r.public.role, r.public.node, scope, True)) for scope in scopes}
        cached = {scope: self._sealed[scope] for scope in scopes
                  if scope in self._sealed and self._sealed[scope][2] == wanted[scope]}
        live = self.store.live_sealed_key_ids(conn, [k for k, _a, _r in cached.values()]) if cached else set()
        found: dict[str, tuple[str, AESGCM]] = {}
        for scope in scopes:
            held = cached.get(scope)
            if held is not None and held[0] in live:
                found[scope] = (held[0], held[1])
                continue
            if not wanted[scope]:
                raise UsageError(f"no identity may read sealed payloads of scope {scope!r}: register an auditor")
            data_key, key_id, when = envelope.new_key(), envelope.new_key_id(), utc_now()
            self.store.insert_sealed_key(conn, {"key_id": key_id, "scope": scope, "created": when})
            self.store.insert_grants(conn, self._grants_for(conn, roles, scope, True, key_id, data_key, when))
            aead = AESGCM(data_key)
            self._sealed[scope] = (key_id, aead, wanted[scope])
            found[scope] = (key_id, aead)
        return found

    def _aead_for_key(self, key_id: str, what: str) -> AESGCM:
        if key_id in self._aeads:
            return self._aeads[key_id]
        aead = AESGCM(self._key_bytes(key_id, what))
        self._aeads[key_id] = aead
        return aead

    def data_key_bytes(self, key_id: str) -> bytes:
        """A data key as this reader opens it (KEK, or a grant to its identity): for grants to others."""
        return self._key_bytes(key_id, f"data key {key_id}")

    def _key_bytes(self, key_id: str, what: str) -> bytes:
        """Open a data key: under the KEK (operator), or from the grant to this identity; say why not."""
        from governance.access_policy import POLICY_DOC, AccessDenied

        if key_id in self._raw:
            return self._raw[key_id]
        if self._identity is None:
            self._require_keys()
        with self.store.read() as conn:
            row = self.store.data_key(conn, key_id)
            sealed = self.store.sealed_key(conn, key_id) if row is None else None
            grant = self.store.grants_to(conn, self._identity.fingerprint, [key_id]).get(key_id) \
                if self._identity is not None else None
        if row is None and sealed is None:
            raise envelope.UnknownDataKeyError(f"{what}: data key {key_id} is unknown to this ledger (the row was not "
                                               "written by fedgov)")
        destroyed = (row.destroyed_at, row.destroyed_by) if row is not None and row.wrapped_key is None else \
            (sealed.destroyed_at, sealed.destroyed_by) if sealed is not None and sealed.destroyed_at else None
        if destroyed is not None:
            raise envelope.KeyDestroyedError(
                f"{what}: payload unreadable, key destroyed (data key {key_id} was crypto-shredded "
                f"at {destroyed[0]} by {destroyed[1]})")
        if self._identity is not None:
            if grant is None:
                raise AccessDenied(f"{what}: identity {self._identity.name} (role {self._identity.role}) holds no grant "
                                   f"of data key {key_id}: written before it was registered, or its role does not "
                                   f"receive it ({POLICY_DOC})")
            from governance.ledger.grants import open_grant

            data_key = open_grant(self._identity, grant, ledger_id=self.ledger_id, key_id=key_id)
        elif row is None:
            raise AccessDenied(f"{what}: data key {key_id} is sealed to auditors and the operator's keys do not "
                               f"open it ({POLICY_DOC}); read with an auditor identity (--identity)")
        else:
            data_key = envelope.unwrap(self._kek_for(row.kek_id), row.wrapped_key)
        self._raw[key_id] = data_key
        return data_key

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A writer transaction; the batches it appends count as this process's own once it commits."""
        self._pending, self._shredding, self._pending_receipts = [], {}, []
        try:
            with self.store.write() as conn:
                self._refuse_moved_away()
                yield conn
        except BaseException:
            self._pending, self._shredding, self._pending_receipts = [], {}, []
            raise
        self._own.extend(self._pending)
        self.receipts.extend(self._pending_receipts)
        self._pending, self._shredding, self._pending_receipts = [], {}, []

    def _refuse_moved_away(self) -> None:
        """Write only to the database the workspace names now, checked under the writer lock.

        `fedgov audit move` holds the old database's writer lock until config.json names the
        new one: a process that opened the ledger before a move would otherwise add entries
        (and advance the signed head) where nobody reads them any more.
        """
        current = self.workspace.db_url
        if current != self.store.url:
            raise StoreError(f"the workspace's ledger moved to {display_url(current)} after this process opened "
                             f"{self.store.display_url}: nothing was written; run the command again")

    def _tail_aead(self, conn: Connection) -> Callable[[str], AESGCM | None]:
        """The data key (as an AESGCM) for a key id, for checking the unsigned tail; None if the ledger lacks it."""
        by_id = {key_id: aead for key_id, aead in self._scope_keys.values()}

        def find(key_id: str) -> AESGCM | None:
            aead = self._shredding.get(key_id) or self._aeads.get(key_id) or by_id.get(key_id)
            if aead is None:
                row = self.store.data_key(conn, key_id)
                if row is None or row.wrapped_key is None:
                    return None
                aead = self._aeads[key_id] = AESGCM(envelope.unwrap(self._kek_for(row.kek_id),
                                                                    row.wrapped_key))
            return aead
        return find

    # -- appending -----------------------------------------------------------------------------

    def append(self, drafts: Sequence[EntryDraft], *, sign: bool = False) -> list[int]:
        """Append a batch in one transaction; durable on return. Returns the new seqs.

        `sign=True` signs a checkpoint over the new tree in the same transaction, so the
        entries are never stored unsigned: what every command that writes uses. An identity
        appends only its own audit.read entries, unsigned: it holds no signing key.
        """
        if self._identity is None or sign:
            self._require_keys()
        if not drafts:
            return []
        with self._transaction() as conn:
            seqs = self._append_in(conn, drafts)
            note = self._checkpoint_in(conn) if sign else None
        if note is not None:
            advance_head(self.workspace, note)
        return seqs

    def _append_in(self, conn: Connection, drafts: Sequence[EntryDraft]) -> list[int]:
        # The hot path of a bulk append (sealed_rows.py): per batch, not per entry, everything but
        # the payload encoding, AES-GCM, leaf encoding and SHA-256 that each entry needs.
        from governance.access_policy import IDENTITY_WRITABLE_TYPES, is_sealed

        columns = DraftColumns.of(drafts)
        roles = self._role_state(conn)
        pairs = set(zip(columns.entry_types, columns.scopes))
        types = {entry_type for entry_type, _scope in pairs}
        if self._identity is not None:
            refused = sorted(types - IDENTITY_WRITABLE_TYPES)
            if refused:
                raise UsageError(f"identity {self._identity.name} may append only "
                                 f"{', '.join(sorted(IDENTITY_WRITABLE_TYPES))} entries, not {', '.join(refused)}")
            if not roles.in_force:
                raise UsageError("this ledger has no auditor, so an identity's audit.read entry could be read by nobody: "
                                 "register an auditor first (`fedgov identity add AUDITOR.pub`)")
        if et.AUDIT_READ in types and any(d.payload.get("reader") != self.reader for d in drafts
                                          if d.entry_type == et.AUDIT_READ):
            raise UsageError(f"an audit.read entry names its own writer as reader ({self.reader['who']}): "
                             "nobody records a read in another's name (docs/access-policy.md)")
        sealed_types = {t for t in types if is_sealed(t)} if roles.in_force else set()
        size = self.store.size(conn)
        frontier = self._load_frontier(conn, size)
        plain = {scope for entry_type, scope in pairs if entry_type not in sealed_types}
        sealed = {scope for entry_type, scope in pairs if entry_type in sealed_types}
        scope_keys = self._keys_for_scopes(conn, plain, roles) if plain else {}
        sealed_keys = self._sealed_keys_for(conn, sealed, roles) if sealed else {}

        def key_for(entry_type: str, scope: str) -> tuple[str, AESGCM]:
            return (sealed_keys if entry_type in sealed_types else scope_keys)[scope]

        rows, leaves = seal_rows(columns, size, utc_now(), self.ledger_id, key_for,
                                 chunk=len(drafts) if self.store.is_sqlite else CHUNK)
        self.store.insert_entries(conn, rows)  # seals as it inserts: `leaves` is complete after this
        if len(leaves) != len(drafts):
            raise AssertionError(f"sealed {len(leaves)} rows of {len(drafts)}")
        nodes = frontier.extend(leaves, min_level=self.store.min_stored_level)
        self._pending.append(OwnBatch.of(size, leaves))
        self.store.insert_nodes(conn, nodes)
        if roles.identities:  # who wrote this batch, for a signer that cannot decrypt it (§5 rule 3)
            self._authenticate_batch(conn, size, leaves)
        self._frontier = (frontier, leaves[-1])
        return list(range(size, size + len(drafts)))

    def _authenticate_batch(self, conn: Connection, first: int, leaves: list[bytes]) -> None:
        """Store the batch's authenticator: the ledger's HMAC, or the writing identity's Ed25519 signature."""
        if self._identity is not None:
            writer = self._identity.fingerprint
            tag = self._identity.sign(batch_message(self.ledger_id, first, leaves, writer))
            self._pending_receipts.append(Receipt.of(self.ledger_id, first, leaves, writer, tag))
        else:
            writer = LEDGER_WRITER
            tag = batch_hmac(self._batch_key(), batch_message(self.ledger_id, first, leaves, writer))
        self.store.insert_batch_auth(conn, first, len(leaves), writer, tag)

    def _batch_key(self) -> bytes:
        return batch_hmac_key(self._require_keys().signing_seed)

    def _load_frontier(self, conn: Connection, size: int) -> Frontier:
        # Reuse our own frontier only if the DB still ends with the leaf we last wrote.
        if self._frontier is not None and self._frontier[0].size == size:
            cached, last_leaf = self._frontier
            self._frontier = None  # re-set only once the batch is built
            if self.store.fetch_nodes(conn, [(0, size - 1)])[(0, size - 1)] == last_leaf:
                return cached
        keys = merkle.frontier_keys(size)
        found = self.store.fetch_nodes(conn, keys)
        return Frontier(size, [found[k] for k in keys])

    # -- tree and checkpoints ---------------------------------------------------------------

    def size(self) -> int:
        with self.store.read() as conn:
            return self.store.size(conn)

    def root(self, size: int | None = None) -> bytes:
        """Root hash at `size` (default: now), from stored nodes."""
        with self.store.tree_read() as conn:
            size = self.store.size(conn) if size is None else size
            return merkle.root_from_nodes(size, lambda k: self.store.fetch_nodes(conn, k))

    def inclusion_proof(self, seq: int, size: int | None = None) -> list[bytes]:
        """Audit path for entry `seq` in the tree of `size` entries (default: now)."""
        with self.store.tree_read() as conn:
            size = self.store.size(conn) if size is None else size
            return merkle.inclusion_proof(seq, size, lambda k: self.store.fetch_nodes(conn, k))

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        with self.store.tree_read() as conn:
            return merkle.consistency_proof(size1, size2, lambda k: self.store.fetch_nodes(conn, k))

    def checkpoint(self) -> str:
        """Sign a checkpoint of the current tree, after proving it extends every one signed before."""
        self._require_keys()
        with self._transaction() as conn:
            note = self._checkpoint_in(conn)
        advance_head(self.workspace, note)
        return note

    def _checkpoint_in(self, conn: Connection, genesis: bool = False, head: str | None = None) -> str:
        """Sign the tree inside the caller's write transaction; the caller advances the signed head after commit.

        Refuses (SigningRefusedError) unless the tree extends both the database's latest
        checkpoint and the workspace's own record of the last one it signed (signed_head.py),
        or `head` in its place (adoption). Only the genesis checkpoint of `create_ledger` is
        signed with neither.
        """
        keys = self._require_keys()
        own = self._own_key()
        size = self.store.size(conn)
        if size == 0:
            raise UsageError("nothing to checkpoint: the ledger is empty")
        fetch = lambda k: self.store.fetch_nodes(conn, k)  # noqa: E731
        root = merkle.root_from_nodes(size, fetch)
        previous = self.store.latest_checkpoint(conn)
        prev: Checkpoint | None = None
        if previous is not None:
            try:
                prev = verify_checkpoint(previous["note"], own, self.origin)
            except CheckpointError as err:
                raise SigningRefusedError(f"refusing to sign: the database's checkpoint #{previous['id']} is not "
                                          f"signed by this ledger's key ({err})") from err
            if prev.size > size:
                raise SigningRefusedError(f"refusing to sign: the ledger has {size} entries but checkpoint "
                                          f"#{previous['id']} covers {prev.size} (truncated)")
        if not genesis:
            check_before_signing(self.workspace, read_head(self.workspace) if head is None else head, own,
                                 None if prev is None else (int(previous["id"]), prev), size,
                                 lambda at: root if at == size else merkle.root_from_nodes(at, fetch))
        proof: list[bytes] = []
        if prev is not None:
            if prev.size == size:
                if prev.root != root:
                    raise SigningRefusedError(f"refusing to sign: root differs from checkpoint #{previous['id']} "
                                              "at the same size (history rewritten)")
                return previous["note"]
            self._own = [b for b in self._own if b.end > prev.size]
            tail = check_unsigned_tail(self.store, conn, prev.size, size, self._own + self._pending,
                                       self._tail_aead(conn), self.ledger_id, self._tail_vouch(conn))
            self._check_root_from_leaves(conn, prev, tail, root)
            proof = merkle.consistency_proof(prev.size, size, fetch)
            try:
                verify_consistency(prev.size, size, proof, prev.root, root)
            except ProofError as err:
                raise SigningRefusedError(f"refusing to sign: tree is not consistent with checkpoint "
                                          f"#{previous['id']}: {err} (if `fedgov audit verify` names a cached tree "
                                          "node, run `fedgov audit repair-cache`)") from err
        note = sign_checkpoint(self.origin, size, root, self.origin, keys.signing_key)
        cp_id = 1 if previous is None else int(previous["id"]) + 1
        self.store.insert_checkpoint(conn, cp_id, size, note, proof, utc_now())
        return note

    def _tail_vouch(self, conn: Connection) -> TailVouch | None:
        """What vouches for other writers' rows once identities exist (§5 rule 3a); None before."""
        from governance.access_policy import IDENTITY_WRITABLE_TYPES

        count, first = self.store.first_registration(conn)
        if not count:
            return None
        roles = self._role_state(conn)
        return TailVouch(self._batch_key(), roles.identities, first, IDENTITY_WRITABLE_TYPES,
                         lambda key_id: self.store.sealed_key(conn, key_id) is not None)

    def _check_root_from_leaves(self, conn: Connection, prev: Checkpoint, tail: list[bytes], root: bytes) -> None:
        """The root to sign must be the signed tree of `prev` extended by the vouched-for tail leaves.

        The stored nodes make proofs fast but are a cache anyone with the database can
        rewrite: nodes that commit to other rows than the entries would otherwise get signed.
        The frontier at `prev.size` is taken from the cache and checked against `prev`'s
        signed root, so only the tail is rehashed.
        """
        keys = merkle.frontier_keys(prev.size)
        found = self.store.fetch_nodes(conn, keys)
        frontier = Frontier(prev.size, [found[k] for k in keys])
        if frontier.root() != prev.root:
            raise SigningRefusedError(f"refusing to sign: the cached tree nodes at size {prev.size} do not hash to the "
                                      "signed root there; run `fedgov audit verify`, then `fedgov audit repair-cache`")
        frontier.extend(tail, keep_nodes=False)
        if frontier.root() != root:
            raise SigningRefusedError("refusing to sign: the cached tree nodes do not match the entries after the last "
                                      "checkpoint; run `fedgov audit verify`, then `fedgov audit repair-cache`")

    def adopt_head(self, actor: str, reason: str) -> str:
        """Take the database's latest checkpoint as the signed head, on the operator's word, and record it.

        For a workspace whose `latest_checkpoint` is missing (made before it existed, or lost),
        or whose database was restored from a backup that ends before it. Never for a database
        that holds the head's entries under another root: that is a rewrite, not a restore.
        The caller verifies the ledger first. The entry keeps the head it replaces, so the
        decision, and any history it gives up, stays in the signed record; the head file
        changes only after that entry has committed.
        """
        self._require_keys()
        if not actor or not reason:
            raise UsageError("adopting the database's checkpoint needs --actor and --reason")
        own = self._own_key()
        with self.workspace.lock():
            replaced = read_head(self.workspace)
            with self._transaction() as conn:
                latest = self.store.latest_checkpoint(conn)
                if latest is None:
                    raise SigningRefusedError("refusing to adopt: the database holds no checkpoint")
                verify_checkpoint(latest["note"], own, self.origin)
                if replaced is not None:
                    self._refuse_adopting_a_rewrite(conn, parse_head(self.workspace, replaced, own),
                                                    int(latest["tree_size"]))
                payload = {"actor": actor, "reason": reason, "adopted": latest["note"], "replaced": replaced}
                self._append_in(conn, [EntryDraft(et.HEAD_ADOPTED, payload, SYSTEM_SCOPE)])
                note = self._checkpoint_in(conn, head=latest["note"])
            write_atomic(self.workspace.head_path, note.encode("utf-8"))
        return note

    def _refuse_adopting_a_rewrite(self, conn: Connection, head: Checkpoint, adopted_size: int) -> None:
        """Adoption may give up entries (a restore lost them), never sign different ones in their place."""
        size = self.store.size(conn)
        if size >= head.size:
            stored = merkle.root_from_nodes(head.size, lambda k: self.store.fetch_nodes(conn, k))
            if stored != head.root:
                raise SigningRefusedError(
                    f"refusing to adopt: the database holds the {head.size} entries this workspace signed, but they "
                    "hash to another root: that is a rewrite, not a restore from backup (run `fedgov audit verify`)")
        elif size > adopted_size:
            raise SigningRefusedError(
                f"refusing to adopt: entries {adopted_size}..{size - 1} are not signed in the database, and the head "
                f"this workspace signed (size {head.size}) covered them, but fedgov cannot check them against it; "
                "restore a backup that ends at a checkpoint")

    def repair_cache(self, actor: str) -> tuple[CacheDiff, str | None]:
        """Rebuild the stored tree nodes from the entries' leaf hashes; touch no entry; record and sign it.

        Returns what differed and the new checkpoint (None when the cache was intact). The
        signing rules still apply, so a cache "repaired" over rewritten entries is refused.
        """
        self._require_keys()
        if not actor:
            raise UsageError("repairing the cache needs an actor")
        with self._transaction() as conn:
            rows = self.store.iter_entries(conn)
            try:
                size, nodes = recompute_tree(rows, self.store.min_stored_level)
            finally:
                rows.close()
            diff = compare(nodes, self.store.iter_nodes(conn), self.store.min_stored_level)
            if not diff:
                return diff, None
            delete, insert = repair_rows(nodes, diff)
            self.store.replace_nodes(conn, delete, insert)
            self._frontier = None
            payload = {"actor": actor, "tree_size": size, "altered": len(diff.altered), "missing": len(diff.missing),
                       "extra": len(diff.extra), "nodes": [[str(part) if type(part) is not int else part for part in k]
                                                           for k in sorted(diff.altered + diff.missing + diff.extra,
                                                                           key=node_order)[:100]]}
            self._append_in(conn, [EntryDraft(et.CACHE_REPAIRED, payload, SYSTEM_SCOPE)])
            note = self._checkpoint_in(conn)
        advance_head(self.workspace, note)
        return diff, note

    # -- reading -------------------------------------------------------------------------------

    def query(self, entry_type: str | None = None, run_id: str | None = None, round: int | None = None,
              node_id: str | None = None, limit: int | None = None) -> list[Entry]:
        """Entries matching every given index field, in seq order."""
        with self.store.read() as conn:
            return self.store.query(conn, entry_type, run_id, round, node_id, limit=limit)

    def distinct(self, column: str) -> list[str]:
        """The distinct values of one plaintext index column (entry_type, run_id or node_id)."""
        with self.store.read() as conn:
            return self.store.distinct(conn, column)

    def holds(self, column: str, value: str) -> bool:
        """Whether any entry has this value in one plaintext index column: one index lookup, no listing."""
        with self.store.read() as conn:
            return self.store.holds(conn, column, value)

    def query_types(self, entry_types: Sequence[str]) -> list[Entry]:
        """Entries of any of these types (each name as stored), in seq order."""
        with self.store.read() as conn:
            return self.store.query(conn, entry_types=entry_types)

    def get(self, seq: int) -> Entry:
        with self.store.read() as conn:
            found = self.store.query(conn, seqs=[seq])
        if not found:
            raise UsageError(f"no entry with seq {seq}")
        return found[0]

    def prefetch_keys(self, entries: Sequence[Entry]) -> None:
        """Unwrap the data keys of many entries with one query, before reading them one by one.

        Reading N entries of N scopes (one per node) otherwise costs N key lookups. Destroyed
        keys are skipped here; `read_payload` still raises KeyDestroyedError for them.
        """
        missing = sorted({e.key_id for e in entries} - self._aeads.keys())
        if not missing:
            return
        if self._identity is not None:
            from governance.ledger.grants import GrantError, open_grant

            with self.store.read() as conn:
                grants = self.store.grants_to(conn, self._identity.fingerprint, missing)
            for key_id, wrapped in grants.items():
                if wrapped is not None:
                    with suppress(GrantError):  # read_payload names it
                        self._aeads[key_id] = AESGCM(open_grant(self._identity, wrapped, ledger_id=self.ledger_id,
                                                                key_id=key_id))
            return
        self._require_keys()
        with self.store.read() as conn:
            rows = self.store.data_keys(conn, missing)
        for row in rows:
            if row.wrapped_key is not None:
                self._aeads[row.key_id] = AESGCM(envelope.unwrap(self._kek_for(row.kek_id), row.wrapped_key))

    def read_payload(self, entry: Entry) -> dict[str, Any]:
        """Decrypt an entry's payload; AccessDenied if the read policy forbids it, KeyDestroyedError if shredded.

        An audit.read payload comes back with its `reader` checked against the batch authenticator
        that vouches for the row (roles.vouched): a mismatch is flagged, never shown as is.
        """
        self.check_may_read(entry)
        what = f"entry seq {entry.seq}"
        aead = self._aead_for_key(entry.key_id, what)
        payload = envelope.open_entry(aead, self.ledger_id, entry.seq, entry.entry_type, entry.key_id,
                                      entry.ciphertext, what)
        if entry.entry_type == et.AUDIT_READ:
            return vouched(payload, self.batch_writer(entry.seq))
        return payload

    def batch_writer(self, seq: int) -> dict[str, Any] | str:
        """Who wrote entry `seq` by its batch authenticator, as an audit.read `reader`; else why it is unknown.

        An identity's Ed25519 signature is checked over the batch's recomputed leaf hashes; the
        ledger's HMAC is checked by a holder of the ledger's keys and taken as written by others
        (docs/ledger-format.md §4.4).
        """
        from governance.identities import OPERATOR

        with self.store.read() as conn:
            auth = self.store.batch_auth_covering(conn, seq)
            if auth is None:
                return "no batch authenticator covers this entry"
            first, count, writer, tag = auth
            encode = LeafEncoder()
            try:  # rows in ENTRY_COLUMNS order: seq, entry_type, timestamp, run_id, round, node_id, ...
                leaves = [hashlib.sha256(b"\x00" + encode(row[0], row[2], row[1], *row[3:9], bytes(row[9]))).digest()
                          for row in self.store.entries_between(conn, first, first + count)]
            except (TypeError, ValueError):
                return f"the batch at seq {first} holds a malformed entry"
            roles = self._role_state(conn)
        if len(leaves) != count:
            return f"the batch authenticator at seq {first} covers entries that are missing"
        message = batch_message(self.ledger_id, first, leaves, writer)
        if writer == LEDGER_WRITER:
            if self._keys is not None and not hmac.compare_digest(batch_hmac(self._batch_key(), message), bytes(tag)):
                return f"the ledger's authenticator of the batch at seq {first} does not verify"
            return {"who": "operator (passphrase)", "role": OPERATOR, "name": None, "fingerprint": None}
        registered = roles.identities.get(writer)
        if registered is None or registered.seq >= first or not registered.public.verify(bytes(tag), message):
            return f"the batch at seq {first} claims identity {writer[:40]!r} and its signature does not verify"
        public = registered.public
        return {"who": public.label, "role": public.role, "name": public.name, "fingerprint": public.fingerprint}

    # -- shredding and rotation ----------------------------------------------------------------

    def shred(self, scope: str, actor: str, reason: str) -> int:
        """Destroy the scope's data key(s) for good; record who, when and why. Returns that entry's seq.

        Setting the wrapped key to NULL is not enough: the old bytes live on in SQLite's WAL,
        in PostgreSQL's dead tuples and WAL, in any copy of the database. So shredding also
        replaces the key-encryption key: every other live data key is re-wrapped under a new
        KEK and the old KEK leaves the keystore. Whatever copy of the old wrapped key
        survives, nothing the passphrase opens can unwrap it.
        """
        if scope == SYSTEM_SCOPE:
            raise UsageError(f"the {SYSTEM_SCOPE} scope holds the ledger's own records and cannot be shredded")
        if scope == et.AUDIT_SCOPE:
            raise UsageError(f"the {et.AUDIT_SCOPE} scope records who read the ledger and cannot be shredded")
        if scope == et.PRIVACY_SCOPE:
            raise UsageError(f"the {et.PRIVACY_SCOPE} scope holds the DP releases every privacy budget is accounted "
                             "from and cannot be shredded (they hold no personal data)")
        if not actor or not reason:
            raise UsageError("shredding needs an actor and a reason")
        with self.store.read() as conn:
            if not self.store.live_keys_for(conn, [scope]) and not self.store.live_sealed_keys_for(conn, [scope]):
                raise UsageError(f"no live data key for scope {scope!r} (never used, or already shredded)")

        def destroy(conn: Connection, when: str) -> tuple[str, dict[str, Any]]:
            live = self.store.live_keys_for(conn, [scope])
            sealed = sorted(r.key_id for r in self.store.live_sealed_keys_for(conn, [scope]))
            if not live and not sealed:
                raise UsageError(f"no live data key for scope {scope!r} (shredded meanwhile by another process)")
            secrets = {envelope.unwrap(self._kek_for(r.kek_id), r.wrapped_key) for r in live}
            # A copy of the same key bytes under another key id (planted by whoever holds the database:
            # RFC 3394 binds neither id nor scope) would survive the new KEK; it is destroyed too.
            copies = sorted(r.key_id for r in self.store.all_live_keys(conn) if r.scope != scope
                            and envelope.unwrap(self._kek_for(r.kek_id), r.wrapped_key) in secrets)
            key_ids = sorted(r.key_id for r in live)
            for row in live:  # the tail check in this transaction may still need them
                self._shredding[row.key_id] = AESGCM(envelope.unwrap(self._kek_for(row.kek_id), row.wrapped_key))
            if key_ids or copies:
                self.store.destroy_data_keys(conn, key_ids + copies, when, actor)
            if sealed:  # sealed keys live only in their grants: those go with them
                self.store.destroy_sealed_keys(conn, sealed, when, actor)
            self.store.destroy_grants(conn, key_ids + copies + sealed)
            return et.KEY_DESTROYED, {"actor": actor, "reason": reason, "scope": scope, "key_ids": key_ids,
                                      "destroyed_at": when, **({"planted_copies": copies} if copies else {}),
                                      **({"sealed_key_ids": sealed} if sealed else {})}

        seq = self._replace_kek(destroy)
        self._scope_keys.pop(scope, None)
        self._sealed.pop(scope, None)
        self._aeads.clear()
        self._raw.clear()
        return seq

    def rotate_kek(self, actor: str) -> int:
        """Re-wrap every live data key under a new KEK; entries are untouched. Returns the entry's seq."""
        if not actor:
            raise UsageError("KEK rotation needs an actor")
        return self._replace_kek(lambda conn, when: (et.KEK_ROTATED, {"actor": actor, "rotated_at": when}))

    def _replace_kek(self, change: Any) -> int:
        """Move every live data key to a new KEK, with `change(conn, when)` in the same transaction.

        Ordering: the keystore first holds both KEKs, then the database commits, then the
        keystore drops the old one. All of it runs under the workspace lock, with the keystore
        read afresh under that lock, and with SIGINT/SIGTERM held back. If it fails, or the
        process dies, the keystore is settled from what the database committed
        (`_reconcile_keystore`), now or by the next writer: it never loses the KEK the
        database names.
        """
        keys = self._require_keys()
        if keys.from_env or not self._passphrase:
            raise UsageError("this rewrites the keystore file (the old key-encryption key must leave it): open the "
                             "ledger with its passphrase, not with FEDGOV_KEK")
        with self.workspace.lock(), signals_deferred():
            self._reconcile_keystore(read_keystore(self.workspace.keystore_path, self._passphrase))
            keys = self._require_keys()
            new_kek = envelope.new_key()
            new_id = envelope.kek_id(new_kek)
            staged = KeyMaterial(kek=new_kek, signing_seed=keys.signing_seed, old_keks=(keys.kek, *keys.old_keks))
            write_keystore(self.workspace.keystore_path, staged, self._passphrase)
            self._keys = staged
            try:
                with self._transaction() as conn:
                    when = utc_now()
                    entry_type, payload = change(conn, when)
                    rows = self.store.all_live_keys(conn)
                    self.store.rewrap_data_keys(conn, [
                        (envelope.wrap(new_kek, envelope.unwrap(self._kek_for(row.kek_id), row.wrapped_key)),
                         new_id, row.key_id) for row in rows])
                    old_id = self.store.meta_value(conn, "kek_id") or envelope.kek_id(keys.kek)
                    self.store.set_meta(conn, "kek_id", new_id)
                    payload.update({"old_kek_id": old_id, "new_kek_id": new_id, "rewrapped_keys": len(rows)})
                    seq = self._append_in(conn, [EntryDraft(entry_type, payload, SYSTEM_SCOPE)])[0]
                    note = self._checkpoint_in(conn)
            except BaseException:
                with suppress(Exception):  # committed or not, settle by what the database says
                    self._reconcile_keystore(staged)
                raise
            advance_head(self.workspace, note)  # first: a later writer settles the keystore only against it
            final = KeyMaterial(kek=new_kek, signing_seed=keys.signing_seed)
            write_keystore(self.workspace.keystore_path, final, self._passphrase)
            self._keys = final
            self._scope_keys.clear()
        return seq

    # -- blobs (model archive) ---------------------------------------------------------------

    def encrypt_blob(self, scope: str, data: bytes, aad: bytes) -> bytes:
        """Encrypt an archive file under the scope's data key: "FGB1" || key id (16) || nonce || ct."""
        self._require_keys()
        with self._transaction() as conn:
            key_id, aead = self._keys_for_scopes(conn, {scope}, self._role_state(conn))[scope]
        return envelope.BLOB_MAGIC + bytes.fromhex(key_id) + envelope.seal(
            aead, data, envelope.blob_aad(self.ledger_id, key_id, aad))

    def decrypt_blob(self, scope: str, blob: bytes, aad: bytes) -> bytes:
        """Decrypt what encrypt_blob made; KeyDestroyedError if the scope was shredded."""
        if blob[:4] != envelope.BLOB_MAGIC or len(blob) < 4 + envelope.KEY_ID_SIZE + envelope.NONCE_SIZE + 16:
            raise UsageError("not a fedgov encrypted blob")
        key_id = blob[4:4 + envelope.KEY_ID_SIZE].hex()
        aead = self._aead_for_key(key_id, f"blob of scope {scope!r}")
        return envelope.open_sealed(aead, blob[4 + envelope.KEY_ID_SIZE:],
                                    envelope.blob_aad(self.ledger_id, key_id, aad), f"blob of scope {scope!r}")


def create_workspace(path: Path, passphrase: str, db_url: str | None = None) -> Workspace:
    """Create a workspace: keystore, database with a genesis entry and checkpoint, trust file."""
    ws = Workspace(Path(path).expanduser().resolve(), db_url)
    if ws.exists:
        raise UsageError(f"a fedgov workspace already exists at {ws.path}")
    if not passphrase:
        raise UsageError("the passphrase must not be empty")
    create_ledger(ws, passphrase, db_url)
    return Workspace(ws.path)


def create_ledger(ws: Workspace, passphrase: str, db_url: str | None) -> None:
    """Create keystore, database, trust file, config and signed head; record a genesis entry and checkpoint.

    All or nothing: nothing that exists is ever overwritten; the database part is one
    transaction, written after the workspace files; if anything fails, exactly the files
    this call made are removed again.
    """
    url = _checked_new_url(ws, db_url)
    files = [ws.keystore_path, ws.trust_path, ws.config_path, ws.head_path, ws.archive_dir]
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None:
        files.append(sqlite_file)
    for path in files:
        if path.exists() or path.is_symlink():
            raise UsageError(f"{path} already exists: `fedgov audit init` makes a new workspace and never overwrites "
                             "one (move the old one away first)")
    made_dir = not ws.path.exists()
    made: list[Any] = []
    try:
        make_private_dir(ws.path)
        keys = KeyMaterial.generate()
        ledger_id = str(uuid.uuid4())
        origin = f"fedgov.ledger/{ledger_id}"
        public_key = public_key_bytes(keys.signing_key)
        made.append(ws.keystore_path)
        write_keystore(ws.keystore_path, keys, passphrase)
        made.append(ws.archive_dir)
        make_private_dir(ws.archive_dir)
        made.append(ws.trust_path)
        write_atomic(ws.trust_path, (VerifierKey(origin, public_key).to_text() + "\n").encode("utf-8"))
        made.append(ws.config_path)
        ws.write_config({"origin": origin, **({"db_url": db_url} if db_url else {})})
        if sqlite_file is not None:
            made.extend(sqlite_file.with_name(sqlite_file.name + suffix) for suffix in ("", "-wal", "-shm"))
        made.append(ws.head_path)
        _create_database(ws, url, keys, passphrase, {
            "ledger_id": ledger_id, "origin": origin, "public_key": base64.b64encode(public_key).decode(),
            "created": utc_now(), "kek_id": envelope.kek_id(keys.kek)})
    except BaseException:
        for path in reversed(made):
            if path.is_dir() and not path.is_symlink():
                if not any(path.iterdir()):
                    path.rmdir()
            else:
                path.unlink(missing_ok=True)
        if made_dir and ws.path.is_dir() and not any(ws.path.iterdir()):
            ws.path.rmdir()
        raise


def _checked_new_url(ws: Workspace, db_url: str | None) -> str:
    """The database URL for a new ledger, refused when it holds a password or names no driver fedgov has."""
    if db_url is None:
        return f"sqlite:///{ws.sqlite_path}"
    check_db_url(db_url, "--db-url")
    return db_url


def check_db_url(db_url: str, option: str) -> None:
    """Refuse (UsageError naming `option`) a URL config.json must not keep: a password, or a database fedgov has no driver for."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parts = make_url(db_url)
    except ArgumentError as err:
        raise UsageError(f"{option} {db_url!r} is not a database URL (e.g. postgresql+psycopg://user@host/db)") from err
    if parts.password or any(k.lower() == "password" for k in parts.query):
        raise UsageError(f"{option} holds a password, which the workspace would keep in config.json: remove it "
                         "and give it to the driver through PGPASSWORD or a PGPASSFILE")
    if parts.get_backend_name() not in ("sqlite", "postgresql"):
        raise UsageError(f"{option}: fedgov keeps its ledger in SQLite or PostgreSQL, not {parts.get_backend_name()}")
    if parts.get_backend_name() == "sqlite" and not parts.database:
        raise UsageError(f"{option}: a SQLite ledger needs a file path (sqlite:///path/ledger.db)")


def _sqlite_file(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parts = make_url(url)
    return Path(parts.database).resolve() if parts.get_backend_name() == "sqlite" else None


def _create_database(ws: Workspace, url: str, keys: KeyMaterial, passphrase: str, meta: dict[str, str]) -> None:
    """Schema, genesis entry and genesis checkpoint in one transaction; the signed head before it commits."""
    from sqlalchemy.exc import SQLAlchemyError

    store = LedgerStore.connect_new(url)
    try:
        with store.write() as conn:
            store.create_schema(conn, meta)
            ledger = Ledger(ws, store, keys, passphrase)
            ledger._append_in(conn, [EntryDraft(et.LEDGER_CREATED, {
                "ledger_id": meta["ledger_id"], "origin": meta["origin"], "public_key": meta["public_key"]},
                SYSTEM_SCOPE)])
            note = ledger._checkpoint_in(conn, genesis=True)
            write_atomic(ws.head_path, note.encode("utf-8"))
    except (SQLAlchemyError, ImportError) as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0][:200]
        raise StoreError(f"cannot create the ledger in {store.display_url}: {reason}") from err
    finally:
        store.close()
