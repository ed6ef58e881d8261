"""The entry types fedgov writes to the ledger, and the scope each payload is encrypted under.

Every type is dotted, `<subject>.<event>`. Ledgers written before fedgov 0.2 hold three
types in an older underscore style (`ledger_created`, `key_destroyed`, `kek_rotated`): the
signed rows keep them, and a query by the dotted name also finds them (`stored_names`).

Scopes decide what one crypto-shred erases: `node:<id>` holds what a node said or
consented to; `run:<id>` what the coordinator decided; `registry` the node keys;
`ledger:system` the ledger's own records; `ledger:audit` who read payloads (audit.read);
`monitor` the retraining decisions (monitor.trigger), about the federation rather than one run;
`ledger:privacy` the DP releases (round.privacy), which every later run's budget is accounted from.
"""

LEDGER_CREATED = "ledger.created"
KEY_DESTROYED = "key.destroyed"
KEK_ROTATED = "kek.rotated"
HEAD_ADOPTED = "ledger.head_adopted"
CACHE_REPAIRED = "ledger.cache_repaired"
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
ROUND_SECAGG = "round.secagg"  # a SecAgg+ round's participation and aggregate (coordinator's, operator-readable)
RUN_FINISHED = "run.finished"
IDENTITY_REGISTERED = "identity.registered"
AUDIT_READ = "audit.read"
# monitoring (docs/monitoring.md): coordinator decisions, operator-readable; node summaries stay in round.reply
MONITOR_REFERENCE = "monitor.reference"
MONITOR_DRIFT = "monitor.drift"
MONITOR_METRICS = "monitor.metrics"
MONITOR_TRIGGER = "monitor.trigger"  # a retraining check and its decision (`fedgov monitor check|watch`)
ROUND_PRIVACY = "round.privacy"  # one DP release and its accounting (governance/privacy/events.py); operator-readable

# Old name -> dotted name, for ledgers written before every type was dotted.
LEGACY_NAMES = {"ledger_created": LEDGER_CREATED, "key_destroyed": KEY_DESTROYED, "kek_rotated": KEK_ROTATED}

REGISTRY_SCOPE = "registry"
SYSTEM_SCOPE = "ledger:system"
AUDIT_SCOPE = "ledger:audit"  # who read what (audit.read): sealed to auditors, never shredded
MONITOR_SCOPE = "monitor"  # retraining decisions (monitor.trigger): about the federation, not one run
# DP releases (round.privacy): every later run's budget is accounted from them, so shredding them would leave every
# capped run selecting no node; they hold pseudonymous node ids and epsilons, no personal data. Never shredded.
PRIVACY_SCOPE = "ledger:privacy"


def stored_names(entry_type: str) -> tuple[str, ...]:
    """Every name under which entries of this type may be stored: the dotted one and its old spelling."""
    dotted = LEGACY_NAMES.get(entry_type, entry_type)
    return (dotted, *(old for old, new in LEGACY_NAMES.items() if new == dotted))


def node_scope(node_id: str) -> str:
    return f"node:{node_id}"


def run_scope(run_id: str) -> str:
    return f"run:{run_id}"
