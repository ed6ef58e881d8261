"""Which pseudonymous fedgov node stands behind each Flower node id, known before contact.

Consent is checked before a node is sent anything, so the binding cannot come from a
reply. Deployed, a SuperNode registered with `flwr supernode register --name <node id>`
shows that name in `grid.get_nodes()`. (Simulated nodes are bound by the harness:
`simulations/apps.py`.) A wrong binding cannot pass silently: the node signs with its own key, and the server
checks the signature against the key registered for the node id it expected.
"""

from __future__ import annotations

from flwr.serverapp import Grid


def bind_registered(grid: Grid) -> dict[int, str]:
    """Flower node id -> the name it was registered under; unnamed nodes stay unbound."""
    return {n.node_id: n.name for n in grid.get_nodes() if n.name}

