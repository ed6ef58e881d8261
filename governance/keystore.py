"""The keystore: the KEK and the checkpoint signing key, encrypted under a passphrase.

The file holds only ciphertext (Scrypt-derived key, AES-256-GCM); services may instead
pass keys in env vars (`FEDGOV_KEK`, `FEDGOV_SIGNING_KEY`, base64). Keys never appear
in a repr, a log line, an error or the database.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from governance.errors import UsageError
from governance.private_files import write_atomic
from governance.verify.canonical import canonical_bytes

FORMAT = "fedgov-keystore"
VERSION = 1
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
# What a keystore may ask of the reader: a crafted file must not cost gigabytes or minutes.
# scrypt needs 128 * n * r bytes; fedgov writes 32 MiB and reads at most 256 MiB.
MAX_SCRYPT_MEMORY = 256 * 2**20
MAX_SCRYPT_N, MAX_SCRYPT_R, MAX_SCRYPT_P = 2**18, 16, 4
ENV_PASSPHRASE = "FEDGOV_PASSPHRASE"
ENV_KEK = "FEDGOV_KEK"
ENV_SIGNING_KEY = "FEDGOV_SIGNING_KEY"


class KeystoreMissingError(UsageError):
    """No keystore file where the workspace expects one."""


class WrongPassphraseError(UsageError):
    """The passphrase does not open the keystore."""


class KeystoreFormatError(UsageError):
    """The keystore file or an env key is not in the expected format."""


@dataclass(frozen=True)
class KeyMaterial:
    """The secrets a writer needs. repr() shows no key bytes."""

    kek: bytes = field(repr=False)
    signing_seed: bytes = field(repr=False)
    old_keks: tuple[bytes, ...] = field(default=(), repr=False)
    from_env: bool = False

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        """The Ed25519 checkpoint signing key."""
        return Ed25519PrivateKey.from_private_bytes(self.signing_seed)

    @classmethod
    def generate(cls) -> KeyMaterial:
        """Fresh KEK and signing key."""
        seed = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return cls(kek=AESGCM.generate_key(bit_length=256), signing_seed=seed)


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def write_keystore(path: Path, keys: KeyMaterial, passphrase: str) -> None:
    """Encrypt `keys` under `passphrase` and write them atomically to `path` (mode 0600)."""
    if not passphrase:
        raise UsageError("the passphrase must not be empty")
    salt, nonce = os.urandom(16), os.urandom(12)
    secret = canonical_bytes({
        "kek": base64.b64encode(keys.kek).decode(),
        "old_keks": [base64.b64encode(k).decode() for k in keys.old_keks],
        "signing_key": base64.b64encode(keys.signing_seed).decode(),
    })
    header = {"format": FORMAT, "version": VERSION,
              "kdf": {"name": "scrypt", "salt": base64.b64encode(salt).decode(), "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
              "cipher": "AES-256-GCM", "nonce": base64.b64encode(nonce).decode()}
    aad = canonical_bytes(header)
    ciphertext = AESGCM(_derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)).encrypt(nonce, secret, aad)
    document = dict(header, ciphertext=base64.b64encode(ciphertext).decode())
    write_atomic(path, json.dumps(document, indent=2).encode("utf-8"))


def _kdf_parameters(kdf: object, path: Path) -> tuple[bytes, int, int, int]:
    """Salt and scrypt (n, r, p) from a keystore, refused beyond the bounds a reader accepts."""
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise KeystoreFormatError(f"{path}: the key derivation is not scrypt")
    n, r, p = kdf.get("n"), kdf.get("r"), kdf.get("p")
    if not all(type(v) is int for v in (n, r, p)):
        raise KeystoreFormatError(f"{path}: scrypt n, r and p must be integers")
    if not (2 <= n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 1 <= r <= MAX_SCRYPT_R and 1 <= p <= MAX_SCRYPT_P
            and 128 * n * r <= MAX_SCRYPT_MEMORY):
        raise KeystoreFormatError(
            f"{path}: scrypt parameters n={n}, r={r}, p={p} are out of bounds (fedgov reads n a power of two up to "
            f"2^18, r up to {MAX_SCRYPT_R}, p up to {MAX_SCRYPT_P}, at most {MAX_SCRYPT_MEMORY >> 20} MiB)")
    salt = base64.b64decode(kdf["salt"], validate=True)
    if len(salt) < 16:
        raise KeystoreFormatError(f"{path}: the scrypt salt is shorter than 16 bytes")
    return salt, n, r, p


def read_keystore(path: Path, passphrase: str) -> KeyMaterial:
    """Decrypt the keystore; raise KeystoreMissingError / WrongPassphraseError / KeystoreFormatError."""
    if not path.exists():
        raise KeystoreMissingError(f"no keystore at {path}: run `fedgov audit init` or set {ENV_KEK}/{ENV_SIGNING_KEY}")
    if not path.is_file():
        raise KeystoreFormatError(f"{path} is not a file")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or document.get("format") != FORMAT or document.get("version") != VERSION:
            raise KeystoreFormatError(f"{path} is not a fedgov keystore of version {VERSION}")
        header = {k: document[k] for k in ("format", "version", "kdf", "cipher", "nonce")}
        salt, n, r, p = _kdf_parameters(document["kdf"], path)
        ciphertext = base64.b64decode(document["ciphertext"], validate=True)
        nonce = base64.b64decode(document["nonce"], validate=True)
        if len(nonce) != 12:
            raise KeystoreFormatError(f"{path}: the nonce is not 12 bytes")
    except (ValueError, KeyError, TypeError, OSError) as err:
        raise KeystoreFormatError(f"{path} is not a readable fedgov keystore") from err
    key = _derive(passphrase, salt, n, r, p)
    try:
        secret = AESGCM(key).decrypt(nonce, ciphertext, canonical_bytes(header))
    except InvalidTag as err:
        raise WrongPassphraseError(f"wrong passphrase for keystore {path} (or the file was altered)") from err
    try:
        return _key_material(json.loads(secret))
    except (ValueError, KeyError, TypeError) as err:
        raise KeystoreFormatError(f"{path} opens with this passphrase but does not hold fedgov keys") from err


def _key_material(secret: dict) -> KeyMaterial:
    """The decrypted keystore content, each key 32 bytes; ValueError/KeyError/TypeError when it is not."""
    if not isinstance(secret, dict) or not isinstance(secret["old_keks"], list):
        raise TypeError("keystore content is not an object with an old_keks list")
    keys = [base64.b64decode(secret["kek"], validate=True), base64.b64decode(secret["signing_key"], validate=True),
            *(base64.b64decode(k, validate=True) for k in secret["old_keks"])]
    if any(len(k) != 32 for k in keys):
        raise ValueError("every key in a keystore is 32 bytes")
    return KeyMaterial(kek=keys[0], signing_seed=keys[1], old_keks=tuple(keys[2:]))


def _env_key(name: str) -> bytes:
    try:
        raw = base64.b64decode(os.environ[name], validate=True)
    except binascii.Error as err:
        raise KeystoreFormatError(f"{name} is not valid base64") from err
    if len(raw) != 32:
        raise KeystoreFormatError(f"{name} must hold 32 bytes (base64), it holds {len(raw)}")
    return raw


def keys_from_env() -> KeyMaterial | None:
    """Keys from FEDGOV_KEK and FEDGOV_SIGNING_KEY when both are set; None when neither is."""
    has_kek, has_sig = ENV_KEK in os.environ, ENV_SIGNING_KEY in os.environ
    if not has_kek and not has_sig:
        return None
    if has_kek != has_sig:
        raise UsageError(f"set both {ENV_KEK} and {ENV_SIGNING_KEY}, or neither")
    return KeyMaterial(kek=_env_key(ENV_KEK), signing_seed=_env_key(ENV_SIGNING_KEY), from_env=True)


def passphrase_from(passphrase_file: Path | None = None, prompt: bool = False, confirm: bool = False) -> str | None:
    """The passphrase: --passphrase-file, else FEDGOV_PASSPHRASE, else a prompt when allowed."""
    return read_passphrase(passphrase_file, ENV_PASSPHRASE, "", "fedgov keystore passphrase: ", prompt, confirm)


def read_passphrase(passphrase_file: Path | None, env_var: str, label: str, question: str, prompt: bool,
                    confirm: bool) -> str | None:
    """A passphrase from its file, else its environment variable, else a prompt when allowed; None if none.

    One order for every secret a command opens (the keystore's, an identity's): `label`
    names which in the error line ("identity " → "cannot read identity passphrase file …").
    """
    if passphrase_file is not None:
        try:
            text = passphrase_file.read_text(encoding="utf-8")
        except OSError as err:
            raise UsageError(f"cannot read {label}passphrase file {passphrase_file}: {err.strerror}") from err
        return text.rstrip("\r\n")
    if os.environ.get(env_var):
        return os.environ[env_var]
    if prompt:
        import getpass

        value = getpass.getpass(question)
        if confirm and getpass.getpass("repeat passphrase: ") != value:
            raise UsageError("the passphrases do not match")
        return value
    return None
