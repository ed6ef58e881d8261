"""A plain Flower 1.42 app with fedgov's model, data and training loop, for comparison.

No governance, no reply validation, no process guard: FedAvg straight from Flower, run
through Flower's public `run_simulation`. `min_available_nodes` is set to the node count
(Flower's documented workaround for the registration race) so both sides train the same
nodes. Usage: python bench/plain_flower.py NODES ROUNDS FRACTION
"""

from __future__ import annotations

import json
import logging
import sys
import time

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.simulation import run_simulation

from fedgov.models import build_model
from fedgov.training import evaluate, resolve_device, train
from fedgov.datasets import load_split
from fedgov.partition import load_partition

NODES, ROUNDS, FRACTION = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
DATASET, SEED = "breast-cancer", 42

client = ClientApp()


@client.train()
def client_train(msg: Message, context: Context) -> Message:
    part = load_partition(DATASET, int(context.node_config["partition-id"]),
                          int(context.node_config["num-partitions"]), seed=SEED)
    model = build_model(DATASET, SEED)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    loss = train(model, part.train, epochs=2, batch_size=16, lr=0.05, device=resolve_device("cpu"), seed=SEED)
    return Message(RecordDict({"arrays": ArrayRecord(model.state_dict()),
                               "metrics": MetricRecord({"train-loss": loss, "num-examples": len(part.train)})}),
                   reply_to=msg)


server = ServerApp()


@server.main()
def server_main(grid: Grid, context: Context) -> None:
    _, held_out = load_split(DATASET, SEED)
    model = build_model(DATASET, SEED)

    def central(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model.load_state_dict(arrays.to_torch_state_dict())
        loss, acc = evaluate(model, held_out, resolve_device("cpu"))
        return MetricRecord({"loss": loss, "accuracy": acc})

    strategy = FedAvg(fraction_train=FRACTION, fraction_evaluate=0.0, min_available_nodes=NODES,
                      min_train_nodes=2)
    start = time.monotonic()
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(build_model(DATASET, SEED).state_dict()),
                            num_rounds=ROUNDS, evaluate_fn=central)
    final = result.evaluate_metrics_serverapp[ROUNDS]
    print(json.dumps({"strategy_seconds": time.monotonic() - start, "accuracy": final["accuracy"]}))


if __name__ == "__main__":
    logging.getLogger("flwr").setLevel(logging.WARNING)
    run_simulation(server, client, num_supernodes=NODES,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"logging_level": "ERROR"}})
