"""Simulated node identities and governance scenarios (consent withdrawal, data drift).

A simulated node `i` is the pseudonymous node `sim-000i` of team `team-0i`. Its Ed25519 key
is made in its own directory under the simulation root, as a real node makes its key on
its own machine; only the public key is registered with the coordinator.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from governance.errors import UsageError
from governance.names import check_name
from fedgov.partition import Partition


def sim_node_id(partition_id: int) -> str:
    return f"sim-{partition_id:04d}"


def sim_team(partition_id: int) -> str:
    return f"team-{partition_id:02d}"


def sim_key_path(sim_root: Path, node_id: str) -> Path:
    return Path(sim_root) / node_id / "node.key"


def parse_node_rounds(spec: str, what: str) -> dict[str, int]:
    """Parse `"sim-0002@2,sim-0005@3"` into {node: round}; bad specs fail in one line."""
    parsed: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        node, _, rnd = item.partition("@")
        if not node or not (rnd.isascii() and rnd.isdigit()) or not 1 <= int(rnd) <= 100_000:
            raise UsageError(f"bad {what} {item!r}: use NODE@ROUND, e.g. sim-0002@2")
        parsed[check_name(node, f"node in {what}")] = int(rnd)
    return parsed


def parse_nodes(spec: str) -> list[str]:
    return [check_name(n.strip(), "node") for n in spec.split(",") if n.strip()]


def drifted(partition: Partition, server_round: int, drift: dict[str, int], node_id: str) -> Partition:
    """From its drift round on, a node's data changes: its features shift by +0.5.

    This is the rehearsal of a node whose data changes between rounds; the dataset
    fingerprint the node signs must change with it.
    """
    start = drift.get(node_id)
    if start is None or server_round < start:
        return partition
    train = replace(partition.train, x=(partition.train.x + np.float32(0.5)).astype(np.float32))
    return replace(partition, train=train)
