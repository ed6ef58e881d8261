"""Simulated-node enrollment: keys, registry and consent before a run."""

from __future__ import annotations

import pytest

from fedgov.settings import RunSettings
from governance import consent_store
from governance.errors import UsageError
from governance.identity import IdentityError, NodeKey
from governance.ledger import Ledger, create_workspace
from governance.node_store import load_registry
from simulations.enroll import enroll_simulated_nodes
from tests.fedgov_command import PASSPHRASE


@pytest.fixture
def setup(tmp_path):
    ws = create_workspace(tmp_path / ".fedgov", PASSPHRASE)
    settings = RunSettings.from_run_config({"num-partitions": 3, "sim-root": str(ws.path / "sim-nodes")})
    return ws, settings


def test_enrollment_registers_every_node_and_grants_consent_once(setup):
    ws, settings = setup
    enroll_simulated_nodes(settings, ws, grant_consent=True, no_consent=["sim-0002"])
    enroll_simulated_nodes(settings, ws, grant_consent=True, no_consent=["sim-0002"])  # idempotent
    with Ledger.open(ws) as ledger:
        assert sorted(load_registry(ledger).node_ids()) == ["sim-0000", "sim-0001", "sim-0002"]
        assert sorted(r.principal for r in consent_store.load_records(ledger).values()) == ["sim-0000", "sim-0001"]


def test_no_consent_for_a_node_that_already_consented_is_refused_before_writing(setup):
    ws, settings = setup
    enroll_simulated_nodes(settings, ws, grant_consent=True, no_consent=[])
    with Ledger.open(ws) as ledger:
        size = ledger.size()
    with pytest.raises(UsageError, match="--no-consent sim-0001: it already holds valid consent"):
        enroll_simulated_nodes(settings.override({"num-partitions": 4}), ws, grant_consent=True, no_consent=["sim-0001"])
    with Ledger.open(ws) as ledger:
        assert ledger.size() == size


def test_a_deployed_node_never_signs_with_a_key_it_just_made_up(tmp_path):
    with pytest.raises(IdentityError, match="does not exist: set fedgov-key"):
        NodeKey.load(tmp_path / "missing.key")
    assert not (tmp_path / "missing.key").exists()


def test_sim_run_never_grants_again_to_a_node_that_withdrew(setup):
    """The attack of the issue: `fedgov sim run` re-granted, as the operator, a consent its node had withdrawn."""
    from datetime import datetime, timezone

    from governance.consent import find_valid_consent

    ws, settings = setup
    enroll_simulated_nodes(settings, ws, grant_consent=True, no_consent=[])
    with Ledger.open(ws) as ledger:
        withdrawn = next(r for r in consent_store.load_records(ledger).values() if r.principal == "sim-0001")
        consent_store.withdraw(ledger, withdrawn.record_id, "the team said no", actor="node:sim-0001")
    enroll_simulated_nodes(settings, ws, grant_consent=True, no_consent=[])  # the next `fedgov sim run`
    with Ledger.open(ws) as ledger:
        records = list(consent_store.load_records(ledger).values())
    assert sorted(r.principal for r in records) == ["sim-0000", "sim-0001", "sim-0002"]  # no new grant
    now = datetime.now(timezone.utc)
    assert find_valid_consent(records, "sim-0001", settings.governance.purpose, now).state == "withdrawn"


def test_automatic_grants_say_they_were_automatic(setup):
    ws, settings = setup
    enroll_simulated_nodes(settings, ws, grant_consent=True, no_consent=[])
    with Ledger.open(ws) as ledger:
        grants = ledger.query(entry_type="consent.granted")
        actors = {ledger.read_payload(e)["actor"] for e in grants}
        methods = {ledger.read_payload(e)["record"]["collection_method"] for e in grants}
    assert actors == {f"{settings.governance.operator} (automatic: fedgov sim run)"} and methods == {"simulation-harness"}
