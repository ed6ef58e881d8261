"""A node's train reply as the coordinator receives it, for the server tests that check replies."""

from __future__ import annotations

import time

from flwr.app import Message, RecordDict
from flwr.app.message.message import make_message
from flwr.app.metadata import Metadata

NODE, FLOWER_ID, RUN = "sim-0000", 4242, "77"


def reply_of(content: RecordDict) -> Message:
    """`content` as the reply of Flower node FLOWER_ID to a train instruction of run RUN."""
    metadata = Metadata(run_id=int(RUN), message_id="reply", src_node_id=FLOWER_ID, dst_node_id=1,
                        reply_to_message_id="instruction", group_id="1", created_at=time.time(), ttl=3600,
                        message_type="train")
    return make_message(metadata, content)
