"""The Ledger: one safe way to append, checkpoint, read, shred and rotate.

Key handling, nonces and associated data stay inside; callers hand in EntryDrafts and
get sequence numbers back.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Connection

from governance.errors import UsageError, VerificationError
from governance.keystore import (ENV_PASSPHRASE, KeyMaterial, keys_from_env, read_keystore,
                                 write_keystore)
from governance.ledger import envelope, merkle
from governance.ledger.canonical import fast_canonical_bytes
from governance.ledger.checkpoint import VerifierKey, public_key_bytes, sign_checkpoint, verify_checkpoint
from governance.ledger.entry import Entry, EntryDraft, LeafEncoder
from governance.ledger.store import LedgerStore
from governance.workspace import Workspace

SYSTEM_SCOPE = "ledger:system"


def utc_now() -> str:
    """RFC 3339 UTC timestamp with microseconds, e.g. 2025-01-31T12:00:00.000000Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Ledger:
    """An open ledger. Writers hold keys; a read-only ledger holds none."""

    def __init__(self, ws: Workspace, store: LedgerStore, keys: KeyMaterial | None,
                 passphrase: str | None = None) -> None:
        self.workspace = ws
        self.store = store
        self._keys = keys
        self._passphrase = passphrase
        self.ledger_id = store.meta["ledger_id"]
        self.origin = store.meta["origin"]
        self._scope_keys: dict[str, tuple[str, AESGCM]] = {}
        self._aeads: dict[str, AESGCM] = {}
        self._frontier: tuple[merkle.Frontier, bytes] | None = None

    def __repr__(self) -> str:
        return f"Ledger({self.origin!r}, writer={self._keys is not None})"

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, ws: Workspace, passphrase: str | None = None) -> Ledger:
        """Open for writing. Keys: `passphrase` > FEDGOV_KEK/FEDGOV_SIGNING_KEY > FEDGOV_PASSPHRASE."""
        import os

        keys = None if passphrase else keys_from_env()
        if keys is None:
            passphrase = passphrase or os.environ.get(ENV_PASSPHRASE)
            if not passphrase:
                raise UsageError(f"no passphrase: set {ENV_PASSPHRASE}, pass --passphrase-file, "
                                 "or set FEDGOV_KEK and FEDGOV_SIGNING_KEY")
            keys = read_keystore(ws.keystore_path, passphrase)
        store = LedgerStore.open(ws.db_url)
        if store.meta["public_key"] != base64.b64encode(public_key_bytes(keys.signing_key)).decode():
            store.close()
            raise UsageError("these keys do not belong to this ledger (signing key differs)")
        return cls(ws, store, keys, passphrase)

    @classmethod
    def open_readonly(cls, ws: Workspace) -> Ledger:
        """Open without any secret: for verification, listing and proofs."""
        return cls(ws, LedgerStore.open(ws.db_url), None)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _require_keys(self) -> KeyMaterial:
        if self._keys is None:
            raise UsageError("this ledger was opened read-only: open it with the keystore passphrase")
        return self._keys

    @property
    def verifier_key(self) -> VerifierKey:
        """The ledger's own public key as recorded in the DB (verify trusts the pinned one instead)."""
        return VerifierKey(self.origin, base64.b64decode(self.store.meta["public_key"]))

    # -- keys ----------------------------------------------------------------------------------

    def _kek_for(self, kek_id: str) -> bytes:
        keys = self._require_keys()
        for kek in (keys.kek, *keys.old_keks):
            if envelope.kek_id(kek) == kek_id:
                return kek
        raise envelope.KeyUnwrapError(f"no key-encryption key with id {kek_id} in the keystore")

    def _keys_for_scopes(self, conn: Connection, scopes: set[str]) -> dict[str, tuple[str, AESGCM]]:
        """Live data key per scope, creating missing ones; checked against the DB in each batch."""
        keys = self._require_keys()
        found: dict[str, tuple[str, AESGCM]] = {}
        for row in self.store.live_keys_for(conn, sorted(scopes)):
            cached = self._scope_keys.get(row.scope)
            if cached and cached[0] == row.key_id:
                found[row.scope] = cached
            else:
                aead = AESGCM(envelope.unwrap(self._kek_for(row.kek_id), bytes(row.wrapped_key)))
                found[row.scope] = (row.key_id, aead)
        for scope in scopes - found.keys():
            data_key, key_id = envelope.new_key(), envelope.new_key_id()
            self.store.insert_data_key(conn, {
                "key_id": key_id, "scope": scope, "wrapped_key": envelope.wrap(keys.kek, data_key),
                "kek_id": envelope.kek_id(keys.kek), "created": utc_now()})
            found[scope] = (key_id, AESGCM(data_key))
        self._scope_keys.update(found)
        return found

    def _aead_for_key(self, key_id: str, what: str) -> AESGCM:
        if key_id in self._aeads:
            return self._aeads[key_id]
        self._require_keys()
        with self.store.read() as conn:
            row = self.store.data_key(conn, key_id)
        if row is None:
            raise envelope.KeyDestroyedError(f"{what}: data key {key_id} is unknown (key destroyed or never existed)")
        if row.wrapped_key is None:
            raise envelope.KeyDestroyedError(
                f"{what}: payload unreadable, key destroyed (data key {key_id} was crypto-shredded "
                f"at {row.destroyed_at} by {row.destroyed_by})")
        aead = AESGCM(envelope.unwrap(self._kek_for(row.kek_id), bytes(row.wrapped_key)))
        self._aeads[key_id] = aead
        return aead

    # -- appending -----------------------------------------------------------------------------

    def append(self, drafts: Sequence[EntryDraft]) -> list[int]:
        """Append a batch in one transaction; durable on return. Returns the new seqs."""
        self._require_keys()
        if not drafts:
            return []
        with self.store.write() as conn:
            return self._append_in(conn, drafts)

    def _append_in(self, conn: Connection, drafts: Sequence[EntryDraft]) -> list[int]:
        # The hot path of a bulk append: per entry one C-encoded payload, one AES-GCM call,
        # one leaf encoding and one SHA-256; everything per-batch is hoisted out of the loop.
        for draft in drafts:
            _checked(draft)
        size = self.store.size(conn)
        frontier = self._load_frontier(conn, size)
        scope_keys = self._keys_for_scopes(conn, {d.scope for d in drafts})
        timestamp = utc_now()
        sealers: dict[tuple[str, str], tuple[str, Any, bytes]] = {}
        nonces = envelope.nonces(len(drafts))
        encode, sha, nonce_size = fast_canonical_bytes, hashlib.sha256, envelope.NONCE_SIZE
        encode_leaf = LeafEncoder()
        rows: list[tuple] = []
        leaves: list[bytes] = []
        for i, draft in enumerate(drafts):
            seq = size + i
            entry_type = draft.entry_type
            sealer = sealers.get((draft.scope, entry_type))
            if sealer is None:
                key_id, aead = scope_keys[draft.scope]
                sealer = (key_id, aead.encrypt, envelope.entry_aad_prefix(self.ledger_id, entry_type, key_id))
                sealers[(draft.scope, entry_type)] = sealer
            key_id, encrypt, aad_prefix = sealer
            nonce = nonces[i * nonce_size:(i + 1) * nonce_size]
            ciphertext = nonce + encrypt(nonce, encode(draft.payload), aad_prefix + b"%d}" % seq)
            leaf = sha(b"\x00" + encode_leaf(seq, timestamp, entry_type, draft.run_id, draft.round, draft.node_id,
                                            draft.model_hash, draft.config_hash, key_id, ciphertext)).digest()
            rows.append((seq, entry_type, timestamp, draft.run_id, draft.round, draft.node_id, draft.model_hash,
                         draft.config_hash, key_id, ciphertext, leaf))
            leaves.append(leaf)
        nodes = frontier.extend(leaves, min_level=self.store.min_stored_level)
        self.store.insert_entries(conn, rows)
        self.store.insert_nodes(conn, nodes)
        self._frontier = (frontier, leaves[-1])
        return list(range(size, size + len(drafts)))

    def _load_frontier(self, conn: Connection, size: int) -> merkle.Frontier:
        # Reuse our own frontier only if the DB still ends with the leaf we last wrote.
        if self._frontier is not None and self._frontier[0].size == size:
            cached, last_leaf = self._frontier
            self._frontier = None  # re-set only once the batch is built
            if self.store.fetch_nodes(conn, [(0, size - 1)])[(0, size - 1)] == last_leaf:
                return cached
        keys = merkle.Frontier.keys_for(size)
        found = self.store.fetch_nodes(conn, keys)
        return merkle.Frontier(size, [found[k] for k in keys])

    # -- tree and checkpoints ---------------------------------------------------------------

    def size(self) -> int:
        with self.store.read() as conn:
            return self.store.size(conn)

    def root(self, size: int | None = None) -> bytes:
        """Root hash at `size` (default: now), from stored nodes."""
        with self.store.read() as conn:
            size = self.store.size(conn) if size is None else size
            return merkle.root_from_nodes(size, lambda k: self.store.fetch_nodes(conn, k))

    def inclusion_proof(self, seq: int, size: int | None = None) -> list[bytes]:
        """Audit path for entry `seq` in the tree of `size` entries (default: now)."""
        with self.store.read() as conn:
            size = self.store.size(conn) if size is None else size
            return merkle.inclusion_proof(seq, size, lambda k: self.store.fetch_nodes(conn, k))

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        with self.store.read() as conn:
            return merkle.consistency_proof(size1, size2, lambda k: self.store.fetch_nodes(conn, k))

    def checkpoint(self) -> str:
        """Sign a checkpoint of the current tree, after proving it consistent with the last one."""
        keys = self._require_keys()
        with self.store.write() as conn:
            size = self.store.size(conn)
            if size == 0:
                raise UsageError("nothing to checkpoint: the ledger is empty")
            fetch = lambda k: self.store.fetch_nodes(conn, k)  # noqa: E731
            root = merkle.root_from_nodes(size, fetch)
            previous = self.store.latest_checkpoint(conn)
            proof: list[bytes] = []
            if previous is not None:
                prev = verify_checkpoint(previous["note"], self.verifier_key, self.origin)
                if prev.size > size:
                    raise VerificationError(f"refusing to sign: the ledger has {size} entries but checkpoint "
                                            f"#{previous['id']} covers {prev.size} (truncated)")
                if prev.size == size:
                    if prev.root != root:
                        raise VerificationError(f"refusing to sign: root differs from checkpoint #{previous['id']} "
                                                "at the same size (history rewritten)")
                    return previous["note"]
                proof = merkle.consistency_proof(prev.size, size, fetch)
                try:
                    merkle.verify_consistency(prev.size, size, proof, prev.root, root)
                except merkle.ProofError as err:
                    raise VerificationError(f"refusing to sign: tree is not consistent with checkpoint "
                                            f"#{previous['id']}: {err}") from err
            note = sign_checkpoint(self.origin, size, root, self.origin, keys.signing_key)
            cp_id = 1 if previous is None else int(previous["id"]) + 1
            self.store.insert_checkpoint(conn, cp_id, size, note, proof, utc_now())
            return note

    # -- reading -------------------------------------------------------------------------------

    def query(self, entry_type: str | None = None, run_id: str | None = None, round: int | None = None,
              node_id: str | None = None, limit: int | None = None) -> list[Entry]:
        """Entries matching every given index field, in seq order."""
        with self.store.read() as conn:
            return self.store.query(conn, entry_type, run_id, round, node_id, limit=limit)

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
        self._require_keys()
        with self.store.read() as conn:
            rows = self.store.data_keys(conn, missing)
        for row in rows:
            if row.wrapped_key is not None:
                self._aeads[row.key_id] = AESGCM(envelope.unwrap(self._kek_for(row.kek_id), bytes(row.wrapped_key)))

    def read_payload(self, entry: Entry) -> dict[str, Any]:
        """Decrypt an entry's payload; KeyDestroyedError if its scope was shredded."""
        what = f"entry seq {entry.seq}"
        aead = self._aead_for_key(entry.key_id, what)
        aad = envelope.entry_aad(self.ledger_id, entry.seq, entry.entry_type, entry.key_id)
        return json.loads(envelope.open_sealed(aead, entry.ciphertext, aad, what))

    # -- shredding and rotation ----------------------------------------------------------------

    def shred(self, scope: str, actor: str, reason: str) -> int:
        """Destroy the scope's data key(s) for good; record who, when and why. Returns that entry's seq."""
        self._require_keys()
        if scope == SYSTEM_SCOPE:
            raise UsageError(f"the {SYSTEM_SCOPE} scope holds the ledger's own records and cannot be shredded")
        if not actor or not reason:
            raise UsageError("shredding needs an actor and a reason")
        with self.store.write() as conn:
            live = self.store.live_keys_for(conn, [scope])
            if not live:
                raise UsageError(f"no live data key for scope {scope!r} (never used, or already shredded)")
            key_ids = [r.key_id for r in live]
            when = utc_now()
            self.store.destroy_data_keys(conn, key_ids, when, actor)
            payload = {"actor": actor, "reason": reason, "scope": scope, "key_ids": key_ids, "destroyed_at": when}
            seq = self._append_in(conn, [EntryDraft("key_destroyed", payload, SYSTEM_SCOPE)])[0]
        self._scope_keys.pop(scope, None)
        for key_id in key_ids:
            self._aeads.pop(key_id, None)
        return seq

    def rotate_kek(self, actor: str) -> int:
        """Re-wrap every live data key under a new KEK; entries are untouched. Returns the entry's seq."""
        keys = self._require_keys()
        if keys.from_env or not self._passphrase:
            raise UsageError("KEK rotation rewrites the keystore file: open the ledger with its passphrase, "
                             "not with FEDGOV_KEK")
        new_kek = envelope.new_key()
        # Keep the old KEK in the keystore until the DB has committed: a crash leaves both usable.
        staged = KeyMaterial(kek=new_kek, signing_seed=keys.signing_seed, old_keks=(keys.kek, *keys.old_keks))
        write_keystore(self.workspace.keystore_path, staged, self._passphrase)
        self._keys = staged
        new_id = envelope.kek_id(new_kek)
        with self.store.write() as conn:
            rows = self.store.all_live_keys(conn)
            for row in rows:
                data_key = envelope.unwrap(self._kek_for(row.kek_id), bytes(row.wrapped_key))
                self.store.rewrap_data_key(conn, row.key_id, envelope.wrap(new_kek, data_key), new_id)
            payload = {"actor": actor, "old_kek_id": envelope.kek_id(keys.kek), "new_kek_id": new_id,
                       "rewrapped_keys": len(rows), "rotated_at": utc_now()}
            seq = self._append_in(conn, [EntryDraft("kek_rotated", payload, SYSTEM_SCOPE)])[0]
        final = KeyMaterial(kek=new_kek, signing_seed=keys.signing_seed)
        write_keystore(self.workspace.keystore_path, final, self._passphrase)
        self._keys = final
        return seq

    # -- blobs (model archive) ---------------------------------------------------------------

    def encrypt_blob(self, scope: str, data: bytes, aad: bytes) -> bytes:
        """Encrypt an archive file under the scope's data key: "FGB1" || key id (16) || nonce || ct."""
        self._require_keys()
        with self.store.write() as conn:
            key_id, aead = self._keys_for_scopes(conn, {scope})[scope]
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


def _checked(draft: EntryDraft) -> dict[str, Any]:
    """Validate a draft's fields; return its payload."""
    if not isinstance(draft.entry_type, str) or not draft.entry_type or len(draft.entry_type) > 64:
        raise UsageError("entry_type must be a non-empty string of at most 64 characters")
    if not isinstance(draft.scope, str) or not draft.scope:
        raise UsageError("scope must be a non-empty string")
    if draft.round is not None and type(draft.round) is not int:
        raise UsageError("round must be an integer or None")
    for name, value in (("run_id", draft.run_id), ("node_id", draft.node_id), ("model_hash", draft.model_hash),
                        ("config_hash", draft.config_hash)):
        if not isinstance(value, str) or len(value) > 128:
            raise UsageError(f"{name} must be a string of at most 128 characters")
    if not isinstance(draft.payload, dict):
        raise UsageError("payload must be a dict")
    return draft.payload


def create_ledger(ws: Workspace, passphrase: str, db_url: str | None) -> None:
    """Create keystore, database, trust file and config; record a genesis entry and checkpoint."""
    url = db_url or f"sqlite:///{ws.sqlite_path}"
    if url.startswith("sqlite") and ws.sqlite_path.exists() and db_url is None:
        raise UsageError(f"{ws.sqlite_path} already exists")
    keys = KeyMaterial.generate()
    ledger_id = str(uuid.uuid4())
    origin = f"fedgov.ledger/{ledger_id}"
    public_key = public_key_bytes(keys.signing_key)
    ws.path.mkdir(parents=True, exist_ok=True)
    store = LedgerStore.create(url, {"ledger_id": ledger_id, "origin": origin,
                                     "public_key": base64.b64encode(public_key).decode(), "created": utc_now()})
    try:
        write_keystore(ws.keystore_path, keys, passphrase)
        ws.archive_dir.mkdir(exist_ok=True)
        ws.trust_path.write_text(VerifierKey(origin, public_key).to_text() + "\n", encoding="utf-8")
        config: dict[str, Any] = {"origin": origin}
        if db_url:
            config["db_url"] = db_url
        ws.write_config(config)
        ledger = Ledger(ws, store, keys, passphrase)
        ledger.append([EntryDraft("ledger_created", {"ledger_id": ledger_id, "origin": origin,
                                                     "public_key": base64.b64encode(public_key).decode()},
                                  SYSTEM_SCOPE)])
        ledger.checkpoint()
    finally:
        store.close()
