"""Process hygiene: no Ray or Flower process outlives the `fedgov` command that made it.

The command becomes a Linux child subreaper, so anything its simulation child leaves
behind (Ray's raylet, GCS, workers, even ones that start their own session) is re-parented
to it rather than to init; it then ends and reaps them all.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
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


def _signal_all(pids: list[int], sig: int) -> None:
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
        _signal_all(pids, signal.SIGTERM)
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
            _signal_all(left, signal.SIGKILL)
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
    were re-parented: a Ray agent that a dying raylet started a moment ago, say."""
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


def run_guarded(cmd: list[str], env: dict[str, str] | None = None, grace: float = 3.0,
                meanwhile: Callable[[], None] | None = None, pass_fds: tuple[int, ...] = (),
                watch: Callable[[int], str | None] | None = None) -> int:
    """Run `cmd` and return its exit code; afterwards end everything it started.

    `meanwhile` runs here while the child starts; if it raises, the child is ended and the
    error propagates. On Ctrl-C or SIGTERM (see fedgov.interrupts) the whole tree is ended at
    once: the child by SIGKILL (a database transaction it had open is rolled back), the rest
    SIGTERM then SIGKILL after `grace` seconds; the interrupt propagates once it is gone. Processes that existed before (a Ray head the user started, say) are left alone.
    With `TAG_VARIABLE` in `env`, every process that inherited it is ended too, wherever it was
    re-parented. `watch(child_pid)` is asked every second while the child runs; a reason it returns ends
    the tree and is raised as `Stopped`.
    """
    become_subreaper()
    me = os.getpid()
    before = set(_children_map().get(me, []))
    try:
        child = subprocess.Popen(cmd, env=env, start_new_session=True, pass_fds=pass_fds)
    finally:
        for fd in pass_fds:  # the child holds its own copy now
            os.close(fd)
    try:
        if meanwhile is not None:
            meanwhile()
        code = _wait(child, watch)
    except KeyboardInterrupt:
        ignore_further()
        child.kill()  # the engine first, at once: SIGTERM would have Ray and Flower print dumps and tracebacks
        raise
    finally:
        with signals_deferred():  # a signal now would cut the clean-up short
            _end_trees(lambda: (set(_children_map().get(me, [])) - before) | {child.pid} | tagged(env), grace)
    return code
