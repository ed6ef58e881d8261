"""What a verifier is handed on its command line: trusted keys (a key or a trust file) and kept checkpoints.

Shared by `fedgov audit verify` and `python -m governance.verify`, so both read them alike
and fail with the same lines (usage errors, exit 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from governance.verify.checkpoint import CheckpointError, VerifierKey, parse_trusted_keys
from governance.verify.errors import UsageError
from governance.verify.rows import KnownCheckpoint, check_signed


def load_trusted_keys(path: Path) -> list[VerifierKey]:
    """Read a trust file: one signed-note verifier key per line, `#` comments allowed."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as err:
        raise UsageError(f"no trusted key file at {path}: pass --trusted-key") from err
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read trusted key file {path}: {getattr(err, 'strerror', None) or err}") from err
    return parse_trusted_keys(text, str(path))


def trusted_keys_option(value: str) -> list[VerifierKey]:
    """`--trusted-key`: a verifier key line, or a trust file of them; a malformed one is a usage error."""
    path = Path(value)
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except (OSError, ValueError):  # not something a file system can name: it can only be a key
        is_dir = is_file = False
    if is_dir:
        raise UsageError(f"--trusted-key {value} is a directory, not a key or a trust file")
    try:
        return load_trusted_keys(path) if is_file else [VerifierKey.from_text(value)]
    except CheckpointError as err:
        raise UsageError(f"--trusted-key: {err}") from err


def load_known_checkpoint(path: Path, trusted: Sequence[VerifierKey]) -> KnownCheckpoint:
    """Read a saved checkpoint note (`fedgov audit checkpoint --out`); it must carry a trusted signature."""
    try:
        text = path.read_bytes().decode("utf-8")  # no newline translation: the note's bytes are signed
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read --known-checkpoint {path}: {getattr(err, 'strerror', None) or err}") from err
    try:
        return KnownCheckpoint(str(path), check_signed(text, trusted), text)
    except CheckpointError as err:
        raise UsageError(f"--known-checkpoint {path} is not a checkpoint signed by a trusted key: {err}") from err
