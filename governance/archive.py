"""The model archive: every global model version, content-addressed and encrypted at rest.

A file `<archive_dir>/<model_hash>.model` holds the AES-GCM envelope of the model's
canonical array bytes (`governance.digests.encode_arrays`), whose SHA-256 is the hash:
whoever fetches a version can check it is the one the ledger names.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from governance.digests import decode_arrays, encode_arrays
from governance.errors import UsageError, VerificationError
from governance.hashes import is_hash_prefix, resolve_prefix
from governance.ledger import Ledger
from governance.private_files import make_private_dir, write_atomic

ARCHIVE_SCOPE = "models"


class ModelNotArchivedError(UsageError):
    """No archived model has that hash."""


class ArchiveCorruptError(VerificationError):
    """An archived model whose content no longer matches its hash."""


def _aad(model_hash: str) -> bytes:
    return f"fedgov.model.v1|{model_hash}".encode()


def archive_path(ledger: Ledger, model_hash: str) -> Path:
    return ledger.workspace.archive_dir / f"{model_hash}.model"


def archive_model(ledger: Ledger, named_arrays: Sequence[tuple[str, np.ndarray]]) -> str:
    """Store a model version once; return its hash. Written atomically (temp file, rename)."""
    data = encode_arrays(named_arrays)
    model_hash = hashlib.sha256(data).hexdigest()
    path = archive_path(ledger, model_hash)
    if not path.exists():
        make_private_dir(path.parent)
        write_atomic(path, ledger.encrypt_blob(ARCHIVE_SCOPE, data, _aad(model_hash)))
    return model_hash


def resolve_hash(ledger: Ledger, prefix: str) -> str:
    """Expand an unambiguous hash prefix, as git does with commit ids."""
    if not is_hash_prefix(prefix):  # checked before it goes into a glob pattern
        raise ModelNotArchivedError(f"{prefix[:70]!r} is not a model hash or a prefix of one (lower-case hex)")
    return resolve_prefix(prefix, (p.stem for p in ledger.workspace.archive_dir.glob(f"{prefix}*.model")),
                          plural="models", error=ModelNotArchivedError,
                          not_found=f"no archived model matches {prefix!r}; model hashes are in `fedgov audit log "
                                    "--type round.aggregated`")


def load_model(ledger: Ledger, model_hash: str) -> list[tuple[str, np.ndarray]]:
    """Decrypt an archived version and check its content against its hash."""
    path = archive_path(ledger, model_hash)
    if not path.exists():
        raise ModelNotArchivedError(f"no archived model {model_hash}")
    data = ledger.decrypt_blob(ARCHIVE_SCOPE, path.read_bytes(), _aad(model_hash))
    if hashlib.sha256(data).hexdigest() != model_hash:
        raise ArchiveCorruptError(f"archived model {model_hash} does not match its hash")
    return decode_arrays(data)
