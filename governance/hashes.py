"""SHA-256 hex digests, the names fedgov gives models, updates, datasets and notices.

One spelling (64 lower-case hex characters) and one way to expand a prefix a person
typed, as git does with commit ids, so every command that takes a hash reads it alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from governance.errors import FedgovError, UsageError

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_HASH_PREFIX = re.compile(r"[0-9a-f]{1,64}")


def is_hash_prefix(text: str) -> bool:
    """True for 1 to 64 lower-case hex characters: something a SHA-256 hex digest can start with."""
    return _HASH_PREFIX.fullmatch(text) is not None


def resolve_prefix(prefix: str, hashes: Iterable[str], *, plural: str, not_found: str,
                   error: type[FedgovError] = UsageError) -> str:
    """The one hash in `hashes` that starts with `prefix`.

    None raises `error(not_found)`; several raise `error` saying how many `plural` match,
    so the caller names what it looked in and where to find the hashes.
    """
    matches = sorted({h for h in hashes if h.startswith(prefix)})
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise error(not_found)
    raise error(f"{prefix!r} matches {len(matches)} {plural}; give more characters")
