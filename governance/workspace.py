"""The workspace: one directory holding the ledger database, keystore, trust file and archives.

Found like git finds a repository: an explicit path, else $FEDGOV_HOME, else the
nearest `.fedgov/` walking up from the current directory, else `./.fedgov`. Creating
one is the ledger's job (`governance.ledger.create_workspace`): this module names the
files, it does not make them.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from governance.errors import UsageError
from governance.private_files import tighten, write_atomic

DIR_NAME = ".fedgov"
ENV_HOME = "FEDGOV_HOME"
ENV_DB_URL = "FEDGOV_DB_URL"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class Workspace:
    """A located workspace directory; `db_url_override` beats the env and the config."""

    path: Path
    db_url_override: str | None = None

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def keystore_path(self) -> Path:
        return self.path / "keystore.json"

    @property
    def trust_path(self) -> Path:
        """Public keys trusted to sign checkpoints, one signed-note verifier key per line."""
        return self.path / "trusted_keys"

    @property
    def head_path(self) -> Path:
        """The latest checkpoint this workspace signed, kept outside the database (signed_head.py)."""
        return self.path / "latest_checkpoint"

    @property
    def archive_dir(self) -> Path:
        """Where encrypted model archive files live."""
        return self.path / "archives"

    @property
    def sqlite_path(self) -> Path:
        return self.path / "ledger.db"

    @property
    def exists(self) -> bool:
        return self.config_path.is_file()

    def config(self) -> dict:
        """The workspace config (db_url, ...); raise UsageError when absent or unreadable."""
        try:
            return json.loads(self.config_path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise UsageError(f"no fedgov workspace at {self.path}: run `fedgov audit init`") from err
        except (OSError, ValueError) as err:
            raise UsageError(f"workspace config {self.config_path} is unreadable") from err

    @property
    def db_url(self) -> str:
        """Database URL: override > $FEDGOV_DB_URL > workspace config > SQLite file in the workspace."""
        if self.db_url_override:
            return self.db_url_override
        if os.environ.get(ENV_DB_URL):
            return os.environ[ENV_DB_URL]
        configured = self.config().get("db_url") if self.exists else None
        return configured or f"sqlite:///{self.sqlite_path}"

    @classmethod
    def locate(cls, explicit: Path | None = None, cwd: Path | None = None) -> Workspace:
        """Resolve the workspace path without requiring it to exist."""
        if explicit is not None:
            return cls(Path(explicit).expanduser().resolve())
        if os.environ.get(ENV_HOME):
            return cls(Path(os.environ[ENV_HOME]).expanduser().resolve())
        start = (cwd or Path.cwd()).resolve()
        for directory in (start, *start.parents):
            candidate = directory / DIR_NAME
            if (candidate / CONFIG_FILE).is_file():
                return cls(candidate)
        return cls(start / DIR_NAME)

    @classmethod
    def discover(cls, explicit: Path | None = None, must_exist: bool = True, db_url: str | None = None) -> Workspace:
        """Find the workspace; raise UsageError if `must_exist` and none is initialised there."""
        ws = cls.locate(explicit)
        if db_url:
            ws = cls(ws.path, db_url)
        if must_exist and not ws.exists:
            raise UsageError(f"no fedgov workspace at {ws.path}: run `fedgov audit init` (or pass --workspace / set {ENV_HOME})")
        return ws

    def write_config(self, config: dict) -> None:
        write_atomic(self.config_path, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8"))

    def tighten(self) -> None:
        """Bring a workspace made by an earlier fedgov to 0700 / 0600."""
        tighten(self.path)

    @contextmanager
    def lock(self, wait_s: float | None = None) -> Iterator[None]:
        """Exclusive lock on the workspace's files (keystore, signed head, config) across processes.

        Re-entrant within a process: a shred that rewrites the keystore also advances the
        signed head, under the one lock. Taken after, never while holding, the database's
        writer lock, except by key rotation and by a move, which hold it around their whole
        transaction. `wait_s` bounds the wait (UsageError after it); by default it waits.
        """
        lock = _dir_lock(self.path)
        lock.acquire(wait_s)
        try:
            yield
        finally:
            lock.release()


class _DirLock:
    """flock(2) on a directory, counted so one process can re-enter it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.guard = threading.RLock()
        self.depth = 0
        self.fd = -1

    def __enter__(self) -> None:
        self.acquire(None)

    def __exit__(self, *_exc: object) -> None:
        self.release()

    def acquire(self, wait_s: float | None) -> None:
        self.guard.acquire()
        if self.depth == 0:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
            except OSError as err:
                self.guard.release()
                raise UsageError(f"cannot lock workspace {self.path}: {err.strerror}") from err
            try:
                _flock(fd, wait_s)
            except BaseException:
                os.close(fd)
                self.guard.release()
                raise
            self.fd = fd
        self.depth += 1

    def release(self) -> None:
        self.depth -= 1
        if self.depth == 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1
        self.guard.release()


def _flock(fd: int, wait_s: float | None) -> None:
    """flock(2) the workspace directory; with `wait_s`, give up after that many seconds."""
    if wait_s is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise UsageError(f"another fedgov command has held the lock on the workspace for {wait_s:g} s (a write, "
                                 "shred or key rotation): try again when it has finished") from None
            time.sleep(0.05)


_DIR_LOCKS: dict[Path, _DirLock] = {}
_DIR_LOCKS_GUARD = threading.Lock()


def _dir_lock(path: Path) -> _DirLock:
    with _DIR_LOCKS_GUARD:
        return _DIR_LOCKS.setdefault(path, _DirLock(path))
