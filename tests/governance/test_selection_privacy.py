"""A node excluded for its privacy budget: recorded as a named state, and the re-draw agrees with it."""

from __future__ import annotations

import pytest

from governance.consent import ConsentCheck
from governance.privacy.budget import PRIVACY_BUDGET
from governance.selection import select_nodes
from governance.verify.selection import SelectionMismatchError, verify_selection

NODES = ["sim-0000", "sim-0001", "sim-0002", "sim-0003"]


def _record():
    checks = {n: ConsentCheck(n, "valid", f"consent-{n}") for n in NODES}
    checks["sim-0001"] = ConsentCheck("sim-0001", PRIVACY_BUDGET, "consent-sim-0001")  # the privacy keeper's gate
    return select_nodes(NODES, checks, 1.0, 2, seed=42, server_round=2).to_dict()


def test_a_node_past_its_budget_is_excluded_by_name_and_the_record_verifies():
    record = _record()
    assert record["excluded"] == {"sim-0001": "privacy-budget"}
    assert "sim-0001" not in record["selected"] and len(record["selected"]) == 3
    assert record["checks"]["sim-0001"] == {"state": "privacy-budget", "record_id": "consent-sim-0001"}
    verify_selection(record)


def test_a_record_that_trains_a_node_past_its_budget_does_not_verify():
    record = _record()
    record["selected"] = sorted([*record["selected"], "sim-0001"])
    with pytest.raises(SelectionMismatchError):
        verify_selection(record)


def test_a_record_hiding_a_budget_exclusion_does_not_verify():
    record = _record()
    record["excluded"] = {}
    with pytest.raises(SelectionMismatchError, match="recorded exclusions"):
        verify_selection(record)
