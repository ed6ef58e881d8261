"""Wait for the expected nodes before round 1.

Flower starts the ServerApp while virtual nodes are still registering, so round 1 would
sample from a partial pool. fedgov waits for the full pool, or fails clearly.
"""

from __future__ import annotations

import time

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

