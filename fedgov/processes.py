"""Process hygiene: no Ray or Flower process outlives the `fedgov` command that made it.

The command becomes a Linux child subreaper, so anything its children leave behind (Ray's
raylet, GCS, workers, Flower's app processes, even ones that start their own session) is
re-parented to it rather than to init; it then ends and reaps them all. `fedgov sim run`
guards its one engine child with `run_guarded`; `fedgov server start` guards the Flower
processes of a coordinator with `guarded`, the same mechanism.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable
from pathlib import Path

from fedgov.interrupts import ignore_further
from governance.deferred_signals import signals_deferred

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1
PARENT_VARIABLE = "FEDGOV_PARENT_PID"


def become_subreaper() -> bool:
    """Adopt orphaned descendants; returns False where the kernel does not offer it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return children


def signal_all(pids: list[int], sig: int) -> None:
    """Send `sig` to each of `pids`; one already gone (or no longer ours) is skipped."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def reap() -> None:
    """Collect exit statuses of finished children so none stays a zombie."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _end_trees(roots: Callable[[], set[int]], grace: float) -> None:
    """SIGTERM the trees under `roots()`, SIGKILL what remains after `grace`, reap.

    `roots()` is asked again each time: when a process dies, its children are re-parented to
    this subreaper and become roots of their own.
    """

    def alive() -> list[int]:
        return _subtrees(_children_map(), [pid for pid in roots() if running(pid)])

    pids = alive()
    if pids:
        signal_all(pids, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and alive():
            reap()
            time.sleep(0.1)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            left = alive()
            if not left:  # and nothing new a moment later: a dying raylet may have just started an agent
                time.sleep(0.3)
                if not alive():
                    break
                continue
            signal_all(left, signal.SIGKILL)
            reap()
            time.sleep(0.05)
    reap()


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def die_with_parent() -> None:
    """In the engine, first thing: the kernel SIGKILLs it when its launcher ends, even by `kill -9`.

    Ray's own services share the fate of the process that started them, so the engine's
    death takes them along. A launcher already gone by now means: exit at once.
    """
    parent = os.environ.pop(PARENT_VARIABLE, None)
    if parent is None:
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the run's lock, shared with the launcher, still keeps it from being swept
    if os.getppid() != int(parent):
        os._exit(1)


class Stopped(Exception):
    """The watch ended the child's tree, for the reason given."""


def _wait(child: subprocess.Popen, watch: Callable[[int], str | None] | None) -> int:
    while True:
        try:
            return child.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            reason = watch(child.pid) if watch is not None else None
            if reason:
                raise Stopped(reason) from None


def _subtrees(tree: dict[int, list[int]], starts: list[int]) -> list[int]:
    """`starts` and every process under them."""
    found: list[int] = []
    stack = list(starts)
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(tree.get(pid, []))
    return found


def descendants(root: int) -> list[int]:
    """Every live process under `root` (not `root` itself)."""
    tree = _children_map()
    return _subtrees(tree, tree.get(root, []))


TAG_VARIABLE = "FEDGOV_PROCESS_TAG"


def tagged(env: dict[str, str] | None) -> set[int]:
    """This user's processes that inherited the child's tag (`TAG_VARIABLE` in `env`), wherever they
    were re-parented: a Ray agent that a dying raylet started a moment ago, say. Once such an agent
    has retitled itself (setproctitle) the start of its /proc environ reads as zeroes, and the tag may
    be among them; `guarded` still finds it under its raylet, or re-parented to this subreaper."""
    tag = (env or {}).get(TAG_VARIABLE)
    if not tag:
        return set()
    needle = f"{TAG_VARIABLE}={tag}".encode()
    found = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if proc.stat().st_uid == os.getuid() and needle in (proc / "environ").read_bytes().split(b"\0"):
                found.add(int(proc.name))
        except OSError:
            continue
    return found


@contextmanager
def guarded(env: dict[str, str] | None = None, grace: float = 3.0) -> Iterator[list[subprocess.Popen]]:
    """End, on leaving the block however it is left, every process started in it and all they started.

    Put each child started in the block into the yielded list. On leaving, those children, any
    other child of this process that appeared meanwhile, everything re-parented to it (it is a
    subreaper) and, with `TAG_VARIABLE` in `env`, every process that inherited that tag get
    SIGTERM, then SIGKILL after `grace` seconds, and are reaped. Signals that arrive meanwhile
    wait until it is done. Processes that existed before are left alone.
    """
    become_subreaper()
    me = os.getpid()
    before = set(_children_map().get(me, []))
    started: list[subprocess.Popen] = []
    try:
        yield started
    finally:
        with signals_deferred():  # a signal now would cut the clean-up short
            _end_trees(lambda: (set(_children_map().get(me, [])) - before) | {c.pid for c in started} | tagged(env),
                       grace)


def parent_death_signal(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn` for a child that must not outlive this process, even its `kill -9`.

    The kernel sends `sig` to the child when the thread that started it ends, so start such
    children from the main thread. Made before the fork: the child only calls `prctl`.
    """
    me = os.getpid()
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return lambda: None  # not Linux: `guarded` still ends the child on every exit but SIGKILL

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != me:  # the parent died before the signal was armed
            os._exit(1)

    return arm


def run_guarded(cmd: list[str], env: dict[str, str] | None = None, grace: float = 3.0,
                meanwhile: Callable[[], None] | None = None, pass_fds: tuple[int, ...] = (),
                watch: Callable[[int], str | None] | None = None) -> int:
    """Run `cmd` and return its exit code; afterwards end everything it started (`guarded`).

    `meanwhile` runs here while the child starts; if it raises, the child is ended and the
    error propagates. On Ctrl-C or SIGTERM (see fedgov.interrupts) the whole tree is ended at
    once: the child by SIGKILL (a database transaction it had open is rolled back), the rest
    SIGTERM then SIGKILL after `grace` seconds; the interrupt propagates once it is gone. Processes that existed before (a Ray head the user started, say) are left alone.
    With `TAG_VARIABLE` in `env`, every process that inherited it is ended too, wherever it was
    re-parented. `watch(child_pid)` is asked every second while the child runs; a reason it returns ends
    the tree and is raised as `Stopped`.
    """
    with guarded(env, grace) as started:
        try:
            child = subprocess.Popen(cmd, env=env, start_new_session=True, pass_fds=pass_fds)
        finally:
            for fd in pass_fds:  # the child holds its own copy now
                os.close(fd)
        started.append(child)
        try:
            if meanwhile is not None:
                meanwhile()
            return _wait(child, watch)
        except KeyboardInterrupt:
            ignore_further()
            child.kill()  # the engine first, at once: SIGTERM would have Ray and Flower print dumps and tracebacks
            raise
