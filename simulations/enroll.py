"""Before a simulated run: the simulated nodes' keys and their consent (the workspace: simulations/runner.py).

Each simulated node makes its key in its own directory and only its public key is
registered, as a deployed node would. Consent for the run's purpose is granted to every
simulated node not listed in `--no-consent` (a rehearsal of the compliance officer's
`fedgov consent grant`), unless it already holds valid consent.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence

from fedgov.simulated_nodes import sim_key_path, sim_node_id, sim_team
from fedgov.settings import RunSettings
from governance import consent_store
from governance.clock import utc_now
from governance.consent import VALID, ConsentRecord, find_valid_consent, records_by_principal
from governance.errors import UsageError
from governance.identity import NodeKey
from governance.ledger import Ledger
from governance.node_store import register_nodes
from governance.workspace import Workspace

SIM_NOTICE = "fedgov simulation: simulated nodes train on bundled public datasets (notice v1)"


def simulation_consent(node_id: str, team: str, purpose: str) -> ConsentRecord:
    return ConsentRecord(
        record_id=consent_store.new_record_id(), principal=node_id, team=team, purpose=purpose,
        data_categories=["bundled-public-dataset"], privacy_notice_version="sim-1",
        privacy_notice_hash=consent_store.notice_hash(SIM_NOTICE), collection_method="simulation-harness",
        granted_at=utc_now(),
    )


def enroll_simulated_nodes(settings: RunSettings, ws: Workspace, grant_consent: bool,
                           no_consent: Sequence[str]) -> None:
    """Keys (under the rehearsal's `sim_root`), registry and consent for the simulated nodes."""
    purpose, operator = settings.governance.purpose, settings.governance.operator
    nodes = []
    for i in range(settings.training.num_partitions):
        node_id = sim_node_id(i)
        key = NodeKey.load_or_create(sim_key_path(settings.rehearsal.sim_root, node_id))
        nodes.append((node_id, key.public_bytes(), sim_team(i)))
    with Ledger.open(ws) as ledger:
        by_principal = records_by_principal(consent_store.load_records(ledger).values())
        now = datetime.now(timezone.utc)
        for node in no_consent:  # checked before anything is written
            check = find_valid_consent(by_principal.get(node, []), node, purpose, now)
            if check.state == VALID:
                raise UsageError(f"--no-consent {node}: it already holds valid consent {check.record_id} for "
                                 f"{purpose!r} in this workspace; revoke it with `fedgov consent revoke "
                                 f"{check.record_id}` or use another --workspace")
        register_nodes(ledger, nodes, actor=operator)
        if grant_consent:  # only to nodes that never answered for this purpose: a withdrawal stands
            missing = [simulation_consent(node, team, purpose) for node, _, team in nodes
                       if node not in no_consent
                       and not any(r.purpose == purpose for r in by_principal.get(node, []))]
            if missing:
                consent_store.grant(ledger, missing, actor=f"{operator} (automatic: fedgov sim run)")
