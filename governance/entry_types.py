"""The entry types fedgov writes to the ledger, and the scope each payload is encrypted under.

Scopes decide what one crypto-shred erases: `node:<id>` holds what a node said or
consented to; `run:<id>` what the coordinator decided; `registry` the node keys.
"""

NODE_REGISTERED = "node.registered"
CONSENT_GRANTED = "consent.granted"
CONSENT_WITHDRAWN = "consent.withdrawn"
RUN_STARTED = "run.started"
ROUND_SELECTION = "round.selection"
ROUND_REPLY = "round.reply"
ROUND_REJECTED = "round.rejected"
ROUND_AGGREGATED = "round.aggregated"
ROUND_FAILED = "round.failed"
ROUND_EVALUATED = "round.evaluated"
RUN_FINISHED = "run.finished"

REGISTRY_SCOPE = "registry"


def node_scope(node_id: str) -> str:
    return f"node:{node_id}"


def run_scope(run_id: str) -> str:
    return f"run:{run_id}"
