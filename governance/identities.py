"""Identities of people who read or administer the ledger: operator, auditor, node-admin.

An identity is two key pairs: X25519 to receive data keys (grants, docs/ledger-format.md §4)
and Ed25519 to sign what it appends (its `audit.read` entries). `N.identity` holds the private
halves encrypted under the identity's own passphrase exactly as the keystore is (scrypt +
AES-256-GCM, §8); `N.pub` is the public half a ledger operator registers. (governance/identity.py
is something else: the keys nodes sign their replies with.)
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from governance.errors import UsageError
from governance.keystore import SCRYPT_N, SCRYPT_P, SCRYPT_R, _derive, _kdf_parameters
from governance.names import check_name
from governance.private_files import UMASK_MODE, write_atomic
from governance.verify.canonical import canonical_bytes

OPERATOR, AUDITOR, NODE_ADMIN = "operator", "auditor", "node-admin"
ROLES = (OPERATOR, AUDITOR, NODE_ADMIN)
PRIVATE_FORMAT = "fedgov-identity"
PUBLIC_FORMAT = "fedgov-identity-public"
VERSION = 1
ENV_IDENTITY = "FEDGOV_IDENTITY"
ENV_IDENTITY_PASSPHRASE = "FEDGOV_IDENTITY_PASSPHRASE"


class IdentityFormatError(UsageError):
    """An identity file that is not one fedgov wrote, or was altered."""


@dataclass(frozen=True)
class PublicIdentity:
    """What a ledger registers: name, role, node (node-admins only) and the two public keys."""

    name: str
    role: str
    node: str | None
    x25519: bytes = field(repr=False)
    ed25519: bytes = field(repr=False)

    def members(self) -> dict[str, Any]:
        """The public members the fingerprint covers (base64 keys), JCS-ready."""
        return {"ed25519": _b64(self.ed25519), "name": self.name, "node": self.node, "role": self.role,
                "x25519": _b64(self.x25519)}

    @property
    def fingerprint(self) -> str:
        """Hex of the first 16 bytes of SHA-256(JCS(public members)): the identity's short public name."""
        return hashlib.sha256(canonical_bytes(self.members())).digest()[:16].hex()

    @property
    def label(self) -> str:
        """How listings and audit.read entries name it: `name (role, fingerprint)`."""
        where = f" of node {self.node}" if self.node else ""
        return f"{self.name} ({self.role}{where}, {self.fingerprint})"

    def to_document(self) -> dict[str, Any]:
        return {"format": PUBLIC_FORMAT, "version": VERSION, **self.members(), "fingerprint": self.fingerprint}

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Whether `signature` is this identity's Ed25519 signature of `message`."""
        from cryptography.exceptions import InvalidSignature

        try:
            Ed25519PublicKey.from_public_bytes(self.ed25519).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    @classmethod
    def from_document(cls, document: object, where: str) -> PublicIdentity:
        """Parse a public identity document (an `N.pub` file, or a registry row); its fingerprint must match."""
        if not isinstance(document, dict) or document.get("format") != PUBLIC_FORMAT \
                or document.get("version") != VERSION:
            raise IdentityFormatError(f"{where} is not a fedgov public identity (version {VERSION})")
        try:
            identity = cls(name=check_name(document["name"], f"{where}: name"), role=document["role"],
                           node=document["node"], x25519=_unb64(document["x25519"], 32),
                           ed25519=_unb64(document["ed25519"], 32))
        except (KeyError, TypeError, ValueError) as err:
            raise IdentityFormatError(f"{where} is not a readable fedgov public identity") from err
        _check_role(identity.role, identity.node, where)
        if document.get("fingerprint") != identity.fingerprint:
            raise IdentityFormatError(f"{where}: its fingerprint does not match its keys (altered)")
        return identity


@dataclass(frozen=True)
class Identity:
    """An identity with its private keys, opened from `N.identity`. repr() shows no key bytes."""

    public: PublicIdentity
    x25519_private: bytes = field(repr=False)
    ed25519_seed: bytes = field(repr=False)

    @property
    def name(self) -> str:
        return self.public.name

    @property
    def role(self) -> str:
        return self.public.role

    @property
    def node(self) -> str | None:
        return self.public.node

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint

    @property
    def x25519_key(self) -> X25519PrivateKey:
        return X25519PrivateKey.from_private_bytes(self.x25519_private)

    def sign(self, message: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.ed25519_seed).sign(message)

    @classmethod
    def generate(cls, name: str, role: str, node: str | None = None) -> Identity:
        check_name(name, "--name")
        _check_role(role, node, "--role")
        x_priv, e_priv = X25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        public = PublicIdentity(name, role, node, x_priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
                                e_priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
        return cls(public, x_priv.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
                   e_priv.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))


def _check_role(role: object, node: object, where: str) -> None:
    if role not in ROLES:
        raise IdentityFormatError(f"{where}: role must be one of {', '.join(ROLES)}, not {role!r}")
    if role == NODE_ADMIN:
        check_name(node, f"{where}: the node of a node-admin")
    elif node is not None:
        raise IdentityFormatError(f"{where}: only a node-admin is bound to a node (role {role})")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: object, length: int) -> bytes:
    if not isinstance(text, str):
        raise TypeError("a key is not a string")
    raw = base64.b64decode(text, validate=True)
    if len(raw) != length or _b64(raw) != text:
        raise ValueError(f"a key is not {length} bytes in standard padded base64")
    return raw


def x25519_public(raw: bytes) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(raw)


# -- files ------------------------------------------------------------------------------------


def write_identity(identity: Identity, out_dir: Path, passphrase: str) -> tuple[Path, Path]:
    """Write `N.identity` (0600, private keys encrypted under `passphrase`) and `N.pub`; never overwrite."""
    if not passphrase:
        raise UsageError("the identity passphrase must not be empty")
    if not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is not an existing directory")
    private_path, public_path = out_dir / f"{identity.name}.identity", out_dir / f"{identity.name}.pub"
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise UsageError(f"{path} already exists: an identity file is never overwritten")
    salt, nonce = os.urandom(16), os.urandom(12)
    header = {"format": PRIVATE_FORMAT, "version": VERSION, "public": identity.public.to_document(),
              "kdf": {"name": "scrypt", "salt": _b64(salt), "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
              "cipher": "AES-256-GCM", "nonce": _b64(nonce)}
    secret = canonical_bytes({"ed25519": _b64(identity.ed25519_seed), "x25519": _b64(identity.x25519_private)})
    sealed = AESGCM(_derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)).encrypt(nonce, secret,
                                                                                    canonical_bytes(header))
    write_atomic(private_path, json.dumps({**header, "ciphertext": _b64(sealed)}, indent=2).encode("utf-8"))
    try:
        write_atomic(public_path, (json.dumps(identity.public.to_document(), indent=2) + "\n").encode("utf-8"),
                     mode=UMASK_MODE)
    except BaseException:
        private_path.unlink(missing_ok=True)
        raise
    return private_path, public_path


def read_public(path: Path) -> PublicIdentity:
    """An `N.pub` file (or the public part of an `N.identity` file: both name the same identity)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from err
    except ValueError as err:
        raise IdentityFormatError(f"{path} is not JSON") from err
    if isinstance(document, dict) and document.get("format") == PRIVATE_FORMAT:
        document = document.get("public")
    return PublicIdentity.from_document(document, str(path))


def read_identity(path: Path, passphrase: str) -> Identity:
    """Open `N.identity` with its passphrase; one clear error for a wrong passphrase or an altered file."""
    from governance.keystore import KeystoreFormatError, WrongPassphraseError

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"cannot read identity file {path}: {err.strerror}") from err
    except ValueError as err:
        raise IdentityFormatError(f"{path} is not a fedgov identity file") from err
    if not isinstance(document, dict) or document.get("format") != PRIVATE_FORMAT \
            or document.get("version") != VERSION:
        raise IdentityFormatError(f"{path} is not a fedgov identity file of version {VERSION} (a .pub file is the "
                                  "public half: reading needs the .identity file)")
    try:
        header = {k: document[k] for k in ("format", "version", "public", "kdf", "cipher", "nonce")}
        salt, n, r, p = _kdf_parameters(document["kdf"], path)
        nonce = base64.b64decode(document["nonce"], validate=True)
        ciphertext = base64.b64decode(document["ciphertext"], validate=True)
        if len(nonce) != 12:
            raise ValueError("nonce")
    except KeystoreFormatError as err:
        raise IdentityFormatError(str(err).replace("keystore", "identity file")) from err
    except (KeyError, TypeError, ValueError) as err:
        raise IdentityFormatError(f"{path} is not a readable fedgov identity file") from err
    public = PublicIdentity.from_document(header["public"], str(path))
    try:
        secret = json.loads(AESGCM(_derive(passphrase, salt, n, r, p)).decrypt(nonce, ciphertext,
                                                                               canonical_bytes(header)))
    except InvalidTag as err:
        raise WrongPassphraseError(f"wrong passphrase for identity {path} (or the file was altered)") from err
    try:
        x_raw, e_raw = _unb64(secret["x25519"], 32), _unb64(secret["ed25519"], 32)
    except (KeyError, TypeError, ValueError) as err:
        raise IdentityFormatError(f"{path} opens but holds no identity keys") from err
    x_pub = X25519PrivateKey.from_private_bytes(x_raw).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    e_pub = Ed25519PrivateKey.from_private_bytes(e_raw).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    if (x_pub, e_pub) != (public.x25519, public.ed25519):
        raise IdentityFormatError(f"{path}: its private keys do not match its public keys (altered)")
    return Identity(public, x_raw, e_raw)


def identity_passphrase(passphrase_file: Path | None = None, prompt: bool = False, confirm: bool = False) -> str:
    """The identity's passphrase: the file, else FEDGOV_IDENTITY_PASSPHRASE, else a prompt when allowed."""
    from governance.keystore import read_passphrase

    value = read_passphrase(passphrase_file, ENV_IDENTITY_PASSPHRASE, "identity ", "identity passphrase: ", prompt,
                            confirm)
    if value is None:
        raise UsageError(f"no identity passphrase: set {ENV_IDENTITY_PASSPHRASE} or pass --identity-passphrase-file")
    return value
