"""The simulated federation's ServerApp: the deployed coordinator's steps, plus rehearsal.

The Simulation Engine runs it with the simulated ClientApp of `simulations/client_app.py`
(kept apart so that every Ray actor loads only the node's code, not the coordinator's);
a deployment runs `server.app:app` and `client.app:app`, the components of pyproject.toml,
which never import the harness. What a simulation adds on the coordinator's side:

- virtual node `i` is `sim-000i`, bound by the order Flower registered the virtual nodes
  (`vce_api._register_nodes`);
- the coordinator waits for the launcher's enrolment gate before round 1;
- scheduled withdrawals of consent (`simulations.withdrawals`);
- its end is passed to the engine, which then ends at once (`simulations.coordinator_end`).
"""

from __future__ import annotations

import time
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedgov.simulated_nodes import sim_node_id
from fedgov.settings import RunSettings
from governance.errors import FedgovError, PolicyError
from server.app import serve
from simulations.coordinator_end import coordinator_ended
from simulations.withdrawals import withdrawing_before_rounds

server_app = ServerApp()


def bind_simulated(grid: Grid) -> dict[int, str]:
    """Flower node id -> `sim-000i`, from the order the Simulation Engine registered them."""
    nodes = sorted(grid.get_nodes(), key=lambda n: n.registered_at)
    stamps = [n.registered_at for n in nodes]
    if len(set(stamps)) != len(stamps):
        raise PolicyError("cannot bind simulated nodes: two share a registration time; rerun the simulation")
    return {n.node_id: sim_node_id(i) for i, n in enumerate(nodes)}


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


@server_app.main()
def simulated_coordinator(grid: Grid, context: Context) -> None:
    """The coordinator, with simulated binding and scheduled withdrawals."""
    settings = RunSettings.from_run_config(context.run_config)
    try:
        wait_for_gate(settings.rehearsal.enrollment_gate, settings.governance.registration_timeout)
        serve(grid, context, bind=bind_simulated,
              around_selection=withdrawing_before_rounds(settings.rehearsal.revocations), live_progress=True)
    except FedgovError as failure:  # serve records its own in the ledger first; the engine reports it
        coordinator_ended(failure)
        raise
    coordinator_ended()
