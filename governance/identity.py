"""Node identity: an Ed25519 key made on the node, and the server's registry of public keys.

The private key never leaves the node. The server only knows each node's public
key and team, so a reply can be bound to the node that trained it: the node signs
``reply_signing_payload(...)`` and the server calls ``verify_reply``, which raises
rather than returning False so a forgotten ``if`` cannot let a forgery through.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from governance.errors import PolicyError, UsageError
from governance.hashes import SHA256_HEX
from governance.private_files import UMASK_MODE, write_atomic
from governance.verify.canonical import canonical_bytes

REPLY_PURPOSE = "fedgov.reply.v1"
MAX_DEVICE_TEXT = 128  # the device a reply states it trained on (its shape: fedgov/devices.py)
REGISTRY_FORMAT = "fedgov.node-registry.v1"
PUBLIC_KEY_BYTES = 32


class IdentityError(UsageError):
    """A key file, registry file or registration that cannot be used as given."""


class ReplyRejected(PolicyError):
    """A node's reply failed the identity check; ``reason`` is a short machine tag."""

    reason: str = "rejected"

    def __init__(self, node_id: str, message: str) -> None:
        super().__init__(message)
        self.node_id = node_id


class UnsignedReplyError(ReplyRejected):
    reason = "unsigned"


class UnregisteredNodeError(ReplyRejected):
    reason = "unregistered-key"


class BadSignatureError(ReplyRejected):
    reason = "bad-signature"


class NodeKey:
    """A node's Ed25519 private key. Made and kept on the node."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key

    @classmethod
    def generate(cls) -> NodeKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: Path) -> NodeKey:
        """Load the PKCS8 PEM key at ``path``, or create one there with mode 0600.

        An existing file readable by group or others is refused, as ssh does,
        because a leaked node key lets anyone sign replies as that node.
        """
        path = Path(path)
        if path.exists():
            return cls._load(path)
        key = cls.generate()
        pem = key._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return key

    @classmethod
    def load(cls, path: Path) -> NodeKey:
        """Load an existing key; a missing one is one clear error, never silently replaced."""
        path = Path(path)
        if not path.is_file():
            raise IdentityError(f"node key {path} does not exist: set fedgov-key in --node-config to the node's key file")
        return cls._load(path)

    @classmethod
    def _load(cls, path: Path) -> NodeKey:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise IdentityError(
                f"node key {path} has mode {mode:04o}; run `chmod 600 {path}` so only its owner can read it"
            )
        try:
            private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except ValueError as e:
            raise IdentityError(f"node key {path} is not an unencrypted PKCS8 PEM key: {e}") from e
        if not isinstance(private_key, Ed25519PrivateKey):
            raise IdentityError(f"node key {path} is not an Ed25519 key")
        return cls(private_key)

    def public_bytes(self) -> bytes:
        """The 32-byte raw public key, the form the registry stores."""
        return self._private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def public_hex(self) -> str:
        return self.public_bytes().hex()

    def sign(self, payload: bytes) -> bytes:
        """A 64-byte Ed25519 signature over ``payload``."""
        return self._private_key.sign(payload)


def reply_signing_payload(
    run_id: str,
    server_round: int,
    update_digest: str,
    dataset_fingerprint: str,
    metrics_digest: str,
    summary_digest: str | None = None,
    device: str | None = None,
) -> bytes:
    """The exact bytes a node signs for one reply: canonical JSON with a purpose tag.

    The purpose tag keeps a reply signature from being replayed as any other
    signed fedgov object; run and round keep it from being replayed elsewhere.
    A reply with a data summary (monitoring) adds `summary_digest`, one that states the device
    it trained on adds `device` (fedgov/devices.py); a reply without them signs exactly the
    bytes it always did, so older ledgers verify unchanged.
    """
    if not isinstance(run_id, str) or not run_id:
        raise IdentityError("run_id must be a non-empty string")
    if isinstance(server_round, bool) or not isinstance(server_round, int) or server_round < 0:
        raise IdentityError(f"server_round must be a non-negative int, got {server_round!r}")
    for name, value in (
        ("update_digest", update_digest),
        ("dataset_fingerprint", dataset_fingerprint),
        ("metrics_digest", metrics_digest),
        *((("summary_digest", summary_digest),) if summary_digest is not None else ()),
    ):
        if not isinstance(value, str) or not SHA256_HEX.fullmatch(value):
            raise IdentityError(f"{name} must be 64 lowercase hex chars (SHA-256), got {value!r}")
    statement = {
        "purpose": REPLY_PURPOSE,
        "run_id": run_id,
        "server_round": server_round,
        "update_digest": update_digest,
        "dataset_fingerprint": dataset_fingerprint,
        "metrics_digest": metrics_digest,
    }
    if summary_digest is not None:
        statement["summary_digest"] = summary_digest
    if device is not None:
        if not isinstance(device, str) or not device or len(device) > MAX_DEVICE_TEXT:
            raise IdentityError(f"device must be text of 1 to {MAX_DEVICE_TEXT} characters, got {device!r:.60}")
        statement["device"] = device
    return canonical_bytes(statement)


@dataclass(frozen=True)
class RegisteredNode:
    node_id: str
    public_key: bytes
    team: str


class NodeRegistry:
    """Pseudonymous node id -> (public key, team), as the server knows them.

    One key per node id and one node id per key: a second id for the same key
    would let one node count twice in a round.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, RegisteredNode] = {}

    def register(self, node_id: str, public_key: bytes, team: str) -> RegisteredNode:
        """Add a node; registering the same (id, key, team) again is a no-op."""
        if not isinstance(node_id, str) or not node_id:
            raise IdentityError("node_id must be a non-empty string")
        if not isinstance(team, str) or not team:
            raise IdentityError(f"team for node {node_id!r} must be a non-empty string")
        if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_BYTES:
            raise IdentityError(
                f"public key for node {node_id!r} must be {PUBLIC_KEY_BYTES} raw Ed25519 bytes"
            )
        node = RegisteredNode(node_id, public_key, team)
        existing = self._nodes.get(node_id)
        if existing is not None:
            if existing == node:
                return existing
            raise IdentityError(
                f"node {node_id!r} is already registered with another key or team; "
                "re-key it under a new node id"
            )
        for other in self._nodes.values():
            if other.public_key == public_key:
                raise IdentityError(
                    f"public key {public_key.hex()[:16]}… is already registered as node {other.node_id!r}"
                )
        self._nodes[node_id] = node
        return node

    def get(self, node_id: str) -> RegisteredNode | None:
        return self._nodes.get(node_id)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def node_ids(self) -> list[str]:
        return sorted(self._nodes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REGISTRY_FORMAT,
            "nodes": {
                node_id: {"public_key": node.public_key.hex(), "team": node.team}
                for node_id, node in sorted(self._nodes.items())
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeRegistry:
        if not isinstance(data, dict) or data.get("format") != REGISTRY_FORMAT:
            raise IdentityError(f"not a node registry: expected format {REGISTRY_FORMAT!r}")
        nodes = data.get("nodes")
        if not isinstance(nodes, dict):
            raise IdentityError("node registry has no 'nodes' mapping")
        registry = cls()
        for node_id, entry in nodes.items():
            try:
                public_key = bytes.fromhex(entry["public_key"])
                team = entry["team"]
            except (KeyError, TypeError, ValueError) as e:
                raise IdentityError(f"registry entry for node {node_id!r} is malformed: {e}") from e
            registry.register(node_id, public_key, team)
        return registry

    def save(self, path: Path) -> None:
        """Write the registry as JSON, atomically (a reader never sees half a file)."""
        write_atomic(Path(path), (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode("utf-8"),
                     mode=UMASK_MODE, durable=False)

    @classmethod
    def load(cls, path: Path) -> NodeRegistry:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise IdentityError(f"node registry {path} does not exist") from e
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise IdentityError(f"node registry {path} is not valid JSON: {e}") from e
        return cls.from_dict(data)


def verify_reply(
    registry: NodeRegistry, node_id: str, signature: bytes | None, payload: bytes
) -> None:
    """Accept a reply only if the registered key of ``node_id`` signed ``payload``.

    Raises ``UnsignedReplyError``, ``UnregisteredNodeError`` or ``BadSignatureError``.
    """
    if not signature:
        raise UnsignedReplyError(node_id, f"reply from node {node_id!r} carries no signature")
    node = registry.get(node_id)
    if node is None:
        raise UnregisteredNodeError(node_id, f"node {node_id!r} has no registered public key")
    try:
        Ed25519PublicKey.from_public_bytes(node.public_key).verify(signature, payload)
    except InvalidSignature as e:
        raise BadSignatureError(
            node_id, f"signature on reply from node {node_id!r} does not verify with its registered key"
        ) from e
