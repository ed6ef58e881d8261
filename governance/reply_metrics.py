"""The metric names of a node's signed reply that the ledger records and the compliance report reads.

The ClientApp sends them (fedgov/protocol.py takes its keys from here), the coordinator checks
them (server/replies.py) and records them in `round.reply` `metrics` (docs/governance.md).
"""

from __future__ import annotations

NUM_EXAMPLES = "num-examples"
TRAIN_LOSS = "train-loss"  # mean loss of the node's last local epoch
# The received global model on the node's own local test split, measured before it trains.
LOCAL_LOSS = "local-loss"
LOCAL_ACCURACY = "local-accuracy"
