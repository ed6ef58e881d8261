"""A minimal Flower app for the deployment tests: the ServerApp sends one instruction to every node and
writes each reply (or error reason) to the run config's `out` file; the ClientApp answers hello."""

import json
import time
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

server = ServerApp()
client = ClientApp()


@server.main()
def main(grid: Grid, context: Context) -> None:
    deadline = time.time() + 60
    while not list(grid.get_node_ids()) and time.time() < deadline:
        time.sleep(0.5)
    out = []
    for ask in range(int(context.run_config["instructions"])):  # a hostile coordinator may send more than it declared
        messages = [Message(RecordDict({"probe": ConfigRecord({"ask": ask})}), dst_node_id=node, message_type="train")
                    for node in grid.get_node_ids()]
        replies = grid.send_and_receive(messages, timeout=120)
        out += [{"error": r.error.reason} if r.has_error() else {"reply": dict(r.content["probe"])} for r in replies]
    Path(str(context.run_config["out"])).write_text(json.dumps(out))


@client.train()
def train(msg: Message, context: Context) -> Message:
    return Message(RecordDict({"probe": ConfigRecord({"hello": "from the node's approved app"})}), reply_to=msg)
