"""Notice within seconds when the Ray cluster under a run goes away.

When the raylet the engine is attached to dies (its cluster was stopped, another user's
`ray stop`, the OOM killer), Ray's own driver may retry for a while, time out after 30 s while
starting, or hang until the round timeout. Two watches end the run with the reason instead:
`RayWatch`, in the engine, probes the raylet's port (any cluster, once Ray is up); `OwnRaylet`,
in the launcher, watches the raylet process of a cluster of the run's own (also while Ray starts).
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from fedgov.processes import descendants, running


def _raylet_address() -> tuple[str, int] | None:
    """Where the engine's raylet listens, once Ray is up in this process; None before.

    Never imports Ray itself: an import from this thread would wait on the main thread's.
    """
    worker = getattr(getattr(sys.modules.get("ray"), "_private", None), "worker", None)
    if worker is None or not getattr(worker.global_worker, "connected", False):
        return None
    node = worker.global_worker.node  # the address has no public accessor
    return node.node_ip_address, int(node.node_manager_port)


class OwnRaylet:
    """The launcher's watch on the raylet of a run's own cluster, found among the engine's descendants.

    It works while the engine's own threads cannot (Ray holds the GIL for long stretches while it starts). A
    raylet that has been gone for `grace` seconds while the engine is still there and the
    run is still open in the ledger means the cluster died under the run. (At a normal end,
    or a failure the run recorded itself, the run is closed before Flower stops Ray.)
    """

    def __init__(self, run_is_open: Callable[[], bool], grace: float = 5.0) -> None:
        self.pid: int | None = None
        self.gone_since: float | None = None
        self.run_is_open, self.grace = run_is_open, grace

    def __call__(self, engine: int) -> str | None:
        if self.pid is None:
            self.pid = next((pid for pid in descendants(engine) if _is_raylet(pid)), None)
            return None
        if self.gone_since is None:
            if running(self.pid):
                return None
            self.gone_since = time.monotonic()
        if time.monotonic() - self.gone_since < self.grace or not self.run_is_open():
            return None
        return f"the Ray cluster under this run stopped: its raylet (pid {self.pid}) died"


def _is_raylet(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].endswith(b"/raylet/raylet")
    except OSError:
        return False


def _answers(address: tuple[str, int], timeout: float) -> bool:
    try:
        socket.create_connection(address, timeout=timeout).close()
        return True
    except OSError:
        return False


class RayWatch:
    """The engine's watch on its raylet, from a daemon thread: ends the run when the raylet stops
    answering while Ray's driver still counts as connected (a driver that would otherwise wait)."""

    def __init__(self, on_lost: Callable[[str], None], interval: float = 0.5, misses: int = 3) -> None:
        self.lost: str | None = None
        self._on_lost, self._interval, self._misses = on_lost, interval, misses
        threading.Thread(target=self._watch, name="fedgov-ray-watch", daemon=True).start()

    def _watch(self) -> None:
        address = None
        while address is None:
            time.sleep(self._interval)
            try:
                address = _raylet_address()
            except Exception:  # noqa: BLE001 - Ray half-initialised: look again
                address = None
        missed = 0
        while missed < self._misses:
            time.sleep(self._interval)
            try:
                connected = _raylet_address() is not None
            except Exception:  # noqa: BLE001 - Ray is shutting down (its node goes before its flag)
                connected = False
            if not connected:
                return  # Ray was shut down (by Flower at the end of the run, or by its own driver): not ours to judge
            missed = 0 if _answers(address, timeout=self._interval) else missed + 1
        self.lost = f"the Ray cluster under this run stopped: its raylet at {address[0]}:{address[1]} no longer answers"
        self._on_lost(self.lost)
