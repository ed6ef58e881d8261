"""The simulated federation's ServerApp and ClientApp: the deployed apps' steps, plus rehearsal.

The Simulation Engine runs these (`simulations/engine.py`); a deployment runs
`server.app:app` and `client.app:app`, the components of pyproject.toml, which never
import this module or `simulations.rehearsal`. What a simulation adds:

- node identity follows from the partition id: virtual node `i` is `sim-000i`, bound by
  the order Flower registered the virtual nodes (`vce_api._register_nodes`), with a key
  made in its own directory under the simulation root;
- the coordinator waits for the launcher's enrolment gate before round 1;
- the rehearsal of `simulations.rehearsal`: faults, drift, hard data, withdrawals and traces.
"""

from __future__ import annotations

import time
from pathlib import Path

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from client.app import NodeSelf, evaluate_reply, node_partition, server_round_of, train_reply
from client.secagg import secagg_app, secagg_round
from fedgov.protocol import GOVERNANCE_KEY, sim_node_id
from fedgov.settings import RunSettings
from governance.errors import PolicyError
from governance.identity import NodeKey
from server.app import serve
from simulations.rehearsal import (SIGNATURE_FAULTS, apply_fault, drifted, made_hard, sim_key_path,
                                   withdrawing_before_rounds, write_trace)

server_app = ServerApp()
client_app = ClientApp()


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
    wait_for_gate(settings.rehearsal.enrollment_gate, settings.governance.registration_timeout)
    serve(grid, context, bind=bind_simulated, around_selection=withdrawing_before_rounds(settings.rehearsal.revocations),
          live_progress=True)


def simulated_self(settings: RunSettings, context: Context) -> NodeSelf:
    """Simulated node `i` is `sim-000i`, with its key in its own directory under the simulation root."""
    node_id = sim_node_id(int(context.node_config["partition-id"]))
    return NodeSelf(node_id, NodeKey.load_or_create(sim_key_path(settings.rehearsal.sim_root, node_id)))


@client_app.train()
def simulated_train(msg: Message, context: Context) -> Message:
    """The deployed node's training, with the rehearsal's drift, faults and traces."""
    settings = RunSettings.from_run_config(context.run_config)
    rehearsal = settings.rehearsal
    me = simulated_self(settings, context)
    if settings.secagg.enabled:  # the run's SecAgg+ messages, in Flower's legacy layout
        server_round = secagg_round(msg)
        partition = drifted(node_partition(settings, context), server_round, rehearsal.drift_plan, me.node_id)
        write_trace(rehearsal.trace_dir, partition, server_round)
        reply = secagg_app(settings, me.node_id, me.key, partition, server_round)(msg, context)
        fault = rehearsal.fault_plan.get(partition.partition_id)
        if fault and not reply.has_error() and GOVERNANCE_KEY in reply.content:  # the signed masked vector
            apply_fault(fault, reply.content)
        return reply
    server_round = server_round_of(msg)
    partition = made_hard(node_partition(settings, context), me.node_id, rehearsal.hard_nodes)
    partition = drifted(partition, server_round, rehearsal.drift_plan, me.node_id)
    fault = rehearsal.fault_plan.get(partition.partition_id)
    unsigned_fault = fault if fault and fault not in SIGNATURE_FAULTS else None
    content = train_reply(msg, settings, me, partition,
                          before_signing=(lambda c: apply_fault(unsigned_fault, c)) if unsigned_fault else None)
    write_trace(rehearsal.trace_dir, partition, server_round)
    if fault in SIGNATURE_FAULTS:
        apply_fault(fault, content)
    return Message(content, reply_to=msg)


@client_app.evaluate()
def simulated_evaluate(msg: Message, context: Context) -> Message:
    """Evaluation as a deployed node does it, on the simulated node's partition: rehearsal does not touch it."""
    settings = RunSettings.from_run_config(context.run_config)
    node_id = sim_node_id(int(context.node_config["partition-id"]))
    return evaluate_reply(msg, settings, made_hard(node_partition(settings, context), node_id,
                                                   settings.rehearsal.hard_nodes))
