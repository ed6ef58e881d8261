"""Files only the workspace's owner may read: directories 0700, files 0600, replaced atomically.

The workspace holds the keystore, the pinned key, the signed head and (on SQLite) the
ledger itself. None of it is for other local users, so nothing is ever created with the
process umask: each file is opened with its final mode, written, synced and renamed.

`write_atomic` is also the one way fedgov replaces any other file it writes (a run's
`rounds.json`, an `--out` file): those keep the umask's mode and skip the fsync.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

DIR_MODE = 0o700
FILE_MODE = 0o600
UMASK_MODE = 0o666  # what `open()` asks for: the process umask decides, for files meant to be shared


def make_private_dir(path: Path) -> None:
    """Create `path` (and parents) if needed, and make it 0700."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)


def create_private_file(path: Path) -> None:
    """Create an empty 0600 file that must not exist yet (SQLite gives its -wal/-shm the same mode)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


def write_atomic(path: Path, data: bytes | Callable[[BinaryIO], None], *, mode: int = FILE_MODE,
                 durable: bool = True) -> None:
    """Replace `path` with `data`: a temp file beside it, then a rename, so a reader or a crash
    sees the old file or the new one, never half of one.

    `data` is the bytes, or a function that writes them to the open temp file (a model too big
    to hold twice). The temp file is created with `mode` (0600; `UMASK_MODE` for a file meant
    to be shared). `durable` syncs the file and its directory: workspace state must survive a
    power cut, an output file the user can write again need not.
    """
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _sync_dir(path.parent)


def _sync_dir(path: Path) -> None:
    """Make a rename durable: fsync the directory that holds the entry."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename itself is still atomic
    finally:
        os.close(fd)


def tighten(root: Path) -> None:
    """Make every directory under `root` 0700 and every regular file 0600 (for workspaces made earlier)."""
    for path in (root, *root.rglob("*")):
        try:
            mode = path.lstat().st_mode
            if stat.S_ISDIR(mode) and stat.S_IMODE(mode) != DIR_MODE:
                os.chmod(path, DIR_MODE)
            elif stat.S_ISREG(mode) and stat.S_IMODE(mode) != FILE_MODE:
                os.chmod(path, FILE_MODE)
        except FileNotFoundError:
            continue  # a temp file renamed away meanwhile
