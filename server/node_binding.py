"""Which pseudonymous fedgov node stands behind each Flower node id, known before contact.

Consent is checked before a node is sent anything, so the binding cannot come from a
reply. Deployed, a SuperNode registered with `flwr supernode register --name <node id>`
shows that name in `grid.get_nodes()`. Simulated, Flower registers virtual node i as the
i-th node (`vce_api._register_nodes`), so registration order gives the partition id.
A wrong binding cannot pass silently: the node signs with its own key, and the server
checks the signature against the key registered for the node id it expected.
"""

from __future__ import annotations

from flwr.serverapp import Grid

from governance.errors import PolicyError
from simulations.scenarios import sim_node_id


def bind_simulated(grid: Grid) -> dict[int, str]:
    """Flower node id -> `sim-000i`, from the order the Simulation Engine registered them."""
    nodes = sorted(grid.get_nodes(), key=lambda n: n.registered_at)
    stamps = [n.registered_at for n in nodes]
    if len(set(stamps)) != len(stamps):
        raise PolicyError("cannot bind simulated nodes: two share a registration time; rerun the simulation")
    return {n.node_id: sim_node_id(i) for i, n in enumerate(nodes)}


def bind_registered(grid: Grid) -> dict[int, str]:
    """Flower node id -> the name it was registered under; unnamed nodes stay unbound."""
    return {n.node_id: n.name for n in grid.get_nodes() if n.name}


def bind_nodes(grid: Grid, simulated: bool) -> dict[int, str]:
    return bind_simulated(grid) if simulated else bind_registered(grid)
