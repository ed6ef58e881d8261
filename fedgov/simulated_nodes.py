"""The names a simulated federation's nodes go by and where their keys live, shared by the launcher and
both simulated apps.

Apart from `fedgov.protocol` because it imports no Flower: `fedgov sim run` enrolls the nodes
under these names while its engine child starts, and the launcher never needs Flower itself.
"""

from __future__ import annotations

from pathlib import Path


def sim_node_id(partition_id: int) -> str:
    """The pseudonymous id of simulated node `i`: `sim-000i`."""
    return f"sim-{partition_id:04d}"


def sim_team(partition_id: int) -> str:
    """The team of simulated node `i`: `team-0i`."""
    return f"team-{partition_id:02d}"


def sim_key_path(sim_root: Path | str, node_id: str) -> Path:
    """Where simulated node `node_id` keeps its key: its own directory, as on a real machine."""
    return Path(sim_root) / node_id / "node.key"
