"""What the ServerApp and the ClientApp agree on: the records of a reply, and how both digest them.

A train reply holds the weights, a few metrics and (governed) the node's signed statement.
The node signs digests of the first two; the server recomputes the same digests from the
bytes it received. Both sides take the record keys and the digests from here, so they
cannot drift apart.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from governance import reply_metrics
from governance.digests import arrays_digest, metrics_digest

ARRAYS_KEY = "arrays"
METRICS_KEY = "metrics"
GOVERNANCE_KEY = "governance"
NUM_EXAMPLES_KEY = reply_metrics.NUM_EXAMPLES
# The received global model on the node's own local test split, measured before it trains: what
# the compliance report draws as per-node accuracy and loss (docs/governance.md, "round.reply").
LOCAL_LOSS_KEY = reply_metrics.LOCAL_LOSS
LOCAL_ACCURACY_KEY = reply_metrics.LOCAL_ACCURACY

# What a train reply may hold: weights and metrics. Anything else could smuggle data off the node.
ALLOWED_RECORDS: Mapping[str, type] = {ARRAYS_KEY: ArrayRecord, METRICS_KEY: MetricRecord}
# A governed reply also carries the node's signed statement (client.attestation).
GOVERNED_RECORDS: Mapping[str, type] = {**ALLOWED_RECORDS, GOVERNANCE_KEY: ConfigRecord}

# With monitoring on, a node may add its data summary (fedgov/summaries.py): one ConfigRecord
# holding the summary's RFC 8785 JSON text under SUMMARY_TEXT_KEY. Its digest is signed.
SUMMARY_KEY = "summary"
SUMMARY_TEXT_KEY = "json"
MONITORED_RECORDS: Mapping[str, type] = {**GOVERNED_RECORDS, SUMMARY_KEY: ConfigRecord}
# The train config key that carries the shared bins (fedgov.summaries.Reference, canonical JSON).
MONITOR_REFERENCE_KEY = "monitor-reference"

NamedArrays = list[tuple[str, np.ndarray]]


def named_arrays(arrays: ArrayRecord) -> NamedArrays:
    """An ArrayRecord as (name, numpy array) pairs, in record order: what digests hash."""
    return [(k, a.numpy()) for k, a in arrays.items()]


def update_digest(content: RecordDict) -> str:
    """SHA-256 over the reply's arrays in their record order (governance.digests layout)."""
    return arrays_digest(named_arrays(content[ARRAYS_KEY]))


def reply_metrics_digest(content: RecordDict) -> str:
    """SHA-256 over the reply's metrics (RFC 8785 JSON, governance.digests)."""
    return metrics_digest(dict(content[METRICS_KEY]))


def summary_text_of(content: RecordDict) -> object:
    """What a reply carries as its summary text (hostile: any type), or None when it has no summary record."""
    if SUMMARY_KEY not in content:
        return None
    return content[SUMMARY_KEY].get(SUMMARY_TEXT_KEY)
