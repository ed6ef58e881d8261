"""The simulated federation's ClientApp: the deployed node's steps, plus the node-side rehearsal.

The Simulation Engine loads it in every Ray actor (`simulations/engine.py`), so it imports only
what a node needs (the deployed `client.app` steps and `simulations.rehearsal`), never the
coordinator's stack (ledger, SQLAlchemy, the PostgreSQL driver): each actor imports this
module before its first reply. A deployment runs `client.app:app` instead. What a simulation adds:

- node identity follows from the partition id: virtual node `i` is `sim-000i`, with a key
  made in its own directory under the simulation root (the coordinator binds it by
  registration order, `simulations/apps.py`);
- the rehearsal of `simulations.rehearsal`: faults, drift, hard data and traces.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from client.app import NodeSelf, evaluate_reply, node_partition, server_round_of, train_reply
from client.secagg import secagg_app, secagg_round
from fedgov.protocol import GOVERNANCE_KEY
from fedgov.simulated_nodes import sim_key_path, sim_node_id
from fedgov.settings import RunSettings
from governance.identity import NodeKey
from simulations.rehearsal import SIGNATURE_FAULTS, apply_fault, drifted, made_hard, write_trace

client_app = ClientApp()


def simulated_self(settings: RunSettings, context: Context) -> NodeSelf:
    """Simulated node `i` is `sim-000i`, with its key in its own directory under the simulation root."""
    node_id = sim_node_id(int(context.node_config["partition-id"]))
    return NodeSelf(node_id, _sim_key(sim_key_path(settings.rehearsal.sim_root, node_id)))


@lru_cache(maxsize=None)
def _sim_key(path: Path) -> NodeKey:
    """A simulated node's key, read once per actor: an actor plays many nodes, each in many rounds."""
    return NodeKey.load_or_create(path)


@client_app.train()
def simulated_train(msg: Message, context: Context) -> Message:
    """The deployed node's training, with the rehearsal's drift, faults and traces."""
    settings = RunSettings.of_run(context.run_config)
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
    settings = RunSettings.of_run(context.run_config)
    node_id = sim_node_id(int(context.node_config["partition-id"]))
    return evaluate_reply(msg, settings, made_hard(node_partition(settings, context), node_id,
                                                   settings.rehearsal.hard_nodes))
