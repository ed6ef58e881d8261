"""Open runs: who holds one, and how a run that nobody can finish is closed.

A run is open from its `run.started` until its `run.finished`. The process that launched
it holds `runs/<run_id>.lock` in the workspace (an flock(2), taken before the run starts,
released after it is closed), so the lock is free exactly when no process of the run is
left: the kernel releases it whatever ended the holder, `kill -9` included.

- The launcher closes its own run when the run cannot: `interrupted` (SIGINT, SIGTERM) or
  `crashed` (the engine died), after everything the run started has ended.
- Every process that opens the ledger for writing first closes, as `abandoned`, each run
  whose lock file is still there but held by nobody, and removes its scratch directory.

Runs launched from another workspace (another machine sharing a PostgreSQL ledger) have no
lock file here and are left to theirs.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import stat
import sys
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from governance import entry_types as et
from governance.errors import PolicyError
from governance.ledger.entry import EntryDraft
from governance.private_files import make_private_dir

RUNS_DIR = "runs"
SCRATCH_PREFIX = "fedgov-run-"
FINISHED, FAILED, INTERRUPTED, CRASHED, ABANDONED = "finished", "failed", "interrupted", "crashed", "abandoned"
_RUN_ID = re.compile(r"[0-9]{1,20}")
_MAX_LOCK_BYTES = 4096


@dataclass
class RunHold:
    """This process's hold on one run: the open, flocked lock file."""

    run_id: str
    path: Path
    fd: int

    def release(self, closed: bool) -> None:
        """Let go. The lock file is removed only when the run is `closed` (or never started);
        otherwise it stays, free, for the next writer to close the run as abandoned."""
        if self.fd < 0:
            return
        if closed:
            with suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self.fd)
        self.fd = -1


def hold_run(workspace_dir: Path, run_id: str, scratch: Path | None = None) -> RunHold:
    """Take the run's lock before anything of it is written; it says the run has a live owner.

    The lock file appears already locked and complete (made under another name, locked,
    written, then linked into place), so a writer sweeping for abandoned runs never sees a
    run's lock file before its launcher holds it.
    """
    if not _RUN_ID.fullmatch(run_id):
        raise PolicyError(f"run id {run_id!r} is not a decimal number")
    runs = workspace_dir / RUNS_DIR
    make_private_dir(runs)
    path = runs / f"{run_id}.lock"
    draft = runs / f".{run_id}.{os.getpid()}.tmp"
    fd = os.open(draft, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        owner = {"pid": os.getpid(), "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "scratch": os.path.realpath(scratch) if scratch else ""}
        os.write(fd, json.dumps(owner).encode())
        try:
            os.link(draft, path)
        except FileExistsError:
            raise PolicyError(f"run {run_id} is already held by another process; start the run again") from None
    except BaseException:
        os.close(fd)
        raise
    finally:
        with suppress(FileNotFoundError):
            draft.unlink()
    return RunHold(run_id, path, fd)


UNSTARTED, OPEN, CLOSED = "unstarted", "open", "closed"


def run_state(ledger, run_id: str) -> str:
    """`unstarted` (no `run.started`), `open` (started, no `run.finished`) or `closed`."""
    types = {entry.entry_type for entry in ledger.query(run_id=run_id)}
    if et.RUN_STARTED not in types:
        return UNSTARTED
    return CLOSED if et.RUN_FINISHED in types else OPEN


def is_open(ledger, run_id: str) -> bool:
    """True when the ledger holds the run's `run.started` and no `run.finished`."""
    return run_state(ledger, run_id) == OPEN


def close_run(ledger, run_id: str, status: str, reason: str) -> bool:
    """Append a signed `run.finished` with `status` and `reason` to a run left open; False if it was not.

    Only the run's holder may call this (its launcher after the run's processes ended, or
    whoever took its free lock), so nothing of the run is written meanwhile.
    """
    entries = ledger.query(run_id=run_id)
    started = [e for e in entries if e.entry_type == et.RUN_STARTED]
    if not started or any(e.entry_type == et.RUN_FINISHED for e in entries):
        return False
    final = next((e.model_hash for e in reversed(entries) if e.model_hash), "")
    draft = EntryDraft(et.RUN_FINISHED, {"status": status, "reason": reason, "final_model_hash": final},
                       scope=et.run_scope(run_id), run_id=run_id, config_hash=started[0].config_hash)
    ledger.append([draft], sign=True)
    return True


def close_abandoned(ledger, workspace_dir: Path) -> list[str]:
    """Close every run of this workspace whose lock nobody holds; returns their ids.

    Called by each writer as it opens the ledger, so a run whose every process was killed
    does not stay open for longer than it takes the next command to write. A run that cannot
    be closed now (the ledger refuses to sign, say) is named in a warning and left for the
    next writer: it never stops the command that found it.
    """
    closed: list[str] = []
    runs = workspace_dir / RUNS_DIR
    if not runs.is_dir():
        return closed
    for path in sorted(runs.glob("*.lock")):
        run_id = path.name.removesuffix(".lock")
        if not _RUN_ID.fullmatch(run_id):
            continue
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue  # released meanwhile, or not ours to read
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its launcher is alive
            if not _still_linked(fd, path):
                continue  # its launcher closed the run and removed the file meanwhile
            owner = _owner(fd)
            pid = owner.get("pid")
            if _launcher_alive(pid):
                continue  # the lock file was replaced under a live run (an editor's save): never close it
            holder = f"pid {pid}" if isinstance(pid, int) else "its launcher"
            try:
                if close_run(ledger, run_id, ABANDONED,
                             f"every process of the run ended without closing it ({holder}, killed?); "
                             "closed by the next command that wrote to the ledger"):
                    closed.append(run_id)
            except Exception as err:  # noqa: BLE001 - the command that found it must still do its job
                print(f"warning: run {run_id} was abandoned and could not be closed now ({type(err).__name__}: "
                      f"{' '.join(str(err).split())[:200]}); the next command that writes will try again",
                      file=sys.stderr)
                continue
            _remove_scratch(owner.get("scratch"), run_id)
            with suppress(FileNotFoundError):
                path.unlink()
        finally:
            os.close(fd)
    return closed


def _launcher_alive(pid: object) -> bool:
    """A second opinion besides the lock: the recorded launcher is still a running fedgov process."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1 or pid == os.getpid():
        return False
    try:
        return b"fedgov" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _still_linked(fd: int, path: Path) -> bool:
    """The locked file is still the one at `path` (not unlinked, not replaced)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
    except OSError:
        return False


def _owner(fd: int) -> dict:
    with suppress(OSError, ValueError):
        owner = json.loads(os.pread(fd, _MAX_LOCK_BYTES, 0) or b"{}")
        if isinstance(owner, dict):
            return owner
    return {}


def _remove_scratch(scratch: object, run_id: str) -> None:
    """Remove a dead run's scratch directory: only one of fedgov's, owned by this user, whose
    `request.json` names this very run (a lock file cannot point the sweep anywhere else)."""
    if not isinstance(scratch, str) or not scratch:
        return
    path = Path(scratch)
    if not path.is_absolute() or os.path.realpath(path) != str(path):
        return  # relative, or through a symbolic link anywhere on the way
    try:
        info = path.lstat()
        request = json.loads((path / "request.json").read_bytes()[:1_000_000])
    except (OSError, ValueError):
        return
    if path.name.startswith(SCRATCH_PREFIX) and stat.S_ISDIR(info.st_mode) \
            and info.st_uid == os.getuid() and isinstance(request, dict) and str(request.get("run_id")) == run_id:
        shutil.rmtree(path, ignore_errors=True)
