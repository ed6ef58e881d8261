"""A local Ray head for the simulation tests, with a mark of its own: started with `ray start`, ended by its mark."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.conftest import processes_marked

RAY = str(Path(sys.executable).parent / "ray")
_TEMP_DIRS: dict[str, str] = {}  # mark -> the head's temp dir, removed when the head is stopped


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ray_head(*extra: str) -> tuple[str, str]:
    """A local Ray head with its own mark and temp dir; returns (address, mark)."""
    port, mark = free_port(), f"ray-head-{uuid.uuid4().hex}"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "FEDGOV_TEST_MARK": mark}
    temp = tempfile.mkdtemp(prefix="rh-", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    _TEMP_DIRS[mark] = temp
    subprocess.run([RAY, "start", "--head", f"--port={port}", f"--temp-dir={temp}", "--include-dashboard=false",
                    "--disable-usage-stats", *extra], check=True, capture_output=True, env=env, timeout=120)
    return f"127.0.0.1:{port}", mark


def _started(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat): the same pid later names another process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def stop_marked(mark: str) -> None:
    """End the processes a test started, by their mark: never `ray stop`, which ends every Ray cluster here."""
    first = {pid: _started(pid) for pid in processes_marked(mark)}  # with the agents under their raylet: a
    # raylet that went first would leave them re-parented, and their mark may be zeroed (tests/conftest.py)
    for pid in first:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    # gcs_server, raylet and the autoscaler's monitor outlast SIGTERM by more than 8 s (measured): the others get
    # a second to go, then whatever is left gets SIGKILL; it is a test head
    deadline = time.monotonic() + 1
    while processes_marked(mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = set(processes_marked(mark)) | {pid for pid, started in first.items() if started and _started(pid) == started}
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    temp = _TEMP_DIRS.pop(mark, None)
    if temp is not None:  # its sockets and logs: nothing of the test head is left in /tmp
        shutil.rmtree(temp, ignore_errors=True)
