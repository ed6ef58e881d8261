"""Simulated nodes are bound to their partitions by the order Flower registered them."""

from __future__ import annotations

from simulations.apps import bind_simulated
from tests.flower_grid import grid_with_nodes


def test_simulated_nodes_bind_to_their_partition_ids_in_registration_order():
    grid, mapping = grid_with_nodes(50)
    binding = bind_simulated(grid)
    assert all(binding[node] == f"sim-{partition:04d}" for node, partition in mapping.items())
