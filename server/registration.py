"""Wait for the expected nodes before round 1.

Flower starts the ServerApp while virtual nodes are still registering, so round 1 would
sample from a partial pool. fedgov waits for the full pool, or fails clearly.
"""

from __future__ import annotations

import time
from pathlib import Path

from flwr.serverapp import Grid

from governance.errors import PolicyError


def wait_for_nodes(grid: Grid, expected: int, timeout: float, poll: float = 0.05) -> list[int]:
    """Return the node ids once `expected` are registered; raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= expected:
            return nodes
        if time.monotonic() >= deadline:
            raise PolicyError(
                f"only {len(nodes)} of {expected} nodes registered within {timeout:g} s; "
                "start the missing nodes or raise registration-timeout"
            )
        time.sleep(poll)


def wait_for_gate(path: str, timeout: float, poll: float = 0.05) -> None:
    """Wait until the launcher has enrolled the simulated nodes (it writes `path` when done).

    The launcher enrolls while Flower starts, to hide that work behind Ray's start-up; a
    failed enrollment ends this process, so waiting here never outlives the launcher.
    """
    if not path:
        return
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() >= deadline:
            raise PolicyError(f"node enrollment did not finish within {timeout:g} s")
        time.sleep(poll)
