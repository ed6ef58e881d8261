"""A node with a small privacy budget is excluded once it is spent: real Flower simulations, then the ledger.

4 nodes x 3 rounds of FedAvg on breast-cancer under server-side DP (sigma 1, C 1, delta 1e-5):
sim-0001's cap of 5 allows one release (epsilon 4.73) and not two (7.08). The budget that
`fedgov privacy budget` shows is recomputed here from the recorded DP events alone, without
fedgov's accountant (tests/privacy_recompute.py). A client-side clipping run follows.
"""

from __future__ import annotations

import json
import shutil

import pytest

from governance import entry_types as et
from governance.verify.selection import verify_selection
from tests.e2e.test_governed_rounds import Run, fedgov
from tests.privacy_recompute import recompute

pytestmark = pytest.mark.timeout(600)

CAPPED, CAP = "sim-0001", 5.0
OTHERS = ["sim-0000", "sim-0002", "sim-0003"]


@pytest.fixture(scope="module")
def capped(tmp_path_factory) -> Run:
    return Run(tmp_path_factory.mktemp("capped"), "--nodes", "4", "--rounds", "3", "--dp", "server-fixed",
               "--privacy-budgets", f"{CAPPED}:{CAP:g}")


@pytest.fixture(scope="module")
def budget(capped) -> list[dict]:
    return json.loads(fedgov(capped.tmp, "privacy", "budget", "--format", "json").stdout)


def test_the_capped_node_trains_round_1_and_is_excluded_by_name_in_rounds_2_and_3(capped):
    for r in (1, 2, 3):
        [(_, selection)] = capped.of(et.ROUND_SELECTION, r)
        verify_selection(selection)  # the re-draw agrees, exclusion included
        if r == 1:
            assert CAPPED in selection["selected"] and selection["excluded"] == {}
        else:
            assert selection["excluded"] == {CAPPED: "privacy-budget"}
            assert selection["checks"][CAPPED]["state"] == "privacy-budget"
            assert (selection["privacy"]["noise_multiplier"], selection["privacy"]["delta"]) == (1, 1e-5)
            projection = selection["privacy"]["nodes"][CAPPED]
            assert projection["epsilon_spent"] <= CAP < projection["epsilon_next"] and projection["epsilon_cap"] == CAP
        replied = sorted(p["node_id"] for _, p in capped.of(et.ROUND_REPLY, r))
        assert replied == sorted([*OTHERS, *([CAPPED] if r == 1 else [])])  # the others train every round


def test_each_recorded_projection_is_redone_from_the_releases_before_it(capped):
    """docs/privacy.md "The cap, at selection": a stranger's redo, with the recorded sigma and delta."""
    for selection_entry, selection in capped.of(et.ROUND_SELECTION):
        before = [p for e, p in capped.of(et.ROUND_PRIVACY) if e.seq < selection_entry.seq]
        assumed = selection["privacy"]
        one_more = {**(before[-1] if before else capped.of(et.ROUND_PRIVACY)[0][1]),
                    "noise_multiplier": assumed["noise_multiplier"], "delta": assumed["delta"],
                    "participants": [CAPPED], "sample_size": 1}
        projection = assumed["nodes"][CAPPED]
        assert projection["epsilon_spent"] == pytest.approx(recompute(before).get(CAPPED, 0.0), rel=1e-9)
        assert projection["epsilon_next"] == pytest.approx(recompute([*before, one_more])[CAPPED], rel=1e-9)
        excluded = selection["checks"][CAPPED]["state"] == "privacy-budget"
        assert excluded == (projection["epsilon_next"] > projection["epsilon_cap"])


def test_every_round_records_its_dp_event_not_only_epsilon(capped):
    for r in (1, 2, 3):
        [(_, event)] = capped.of(et.ROUND_PRIVACY, r)
        participants = sorted([*OTHERS, *([CAPPED] if r == 1 else [])])
        assert event["participants"] == participants and event["sample_size"] == len(participants)
        assert (event["dp"], event["mechanism"], event["noise_multiplier"], event["clipping_norm"], event["delta"]) \
            == ("server-fixed", "gaussian", 1, 1, 1e-5)
        assert event["population"] == 4 and event["selected"] == len(participants)
        assert event["accountant"].startswith("rdp (dp-accounting 0.6.") and len(event["orders"]) > 100
        assert event["neighboring"].startswith("zero-out one node's update") and event["amplification"].startswith("none")
        assert event["caps"] == {CAPPED: CAP}


def test_the_budget_shown_is_recomputed_independently_from_the_recorded_events(capped, budget):
    events = [p for _, p in capped.of(et.ROUND_PRIVACY)]
    independent = recompute(events)
    shown = {row["node_id"]: row for row in budget}
    assert sorted(shown) == sorted([CAPPED, *OTHERS])
    for node, eps in independent.items():
        assert shown[node]["epsilon_spent"] == pytest.approx(eps, rel=1e-9, abs=1e-12)
    assert shown[CAPPED]["releases"] == 1 and shown[CAPPED]["epsilon_spent"] <= CAP
    assert shown[CAPPED]["cap"] == CAP and shown[CAPPED]["remaining"] == pytest.approx(CAP - independent[CAPPED])
    assert all(shown[n]["releases"] == 3 and shown[n]["cap"] is None for n in OTHERS)


def test_an_erasure_of_the_runs_scope_leaves_every_budget_as_it_was(capped, budget, tmp_path):
    """The releases are in `ledger:privacy`, not the run's scope: shredding `run:<id>` (a copy of the workspace, so
    the other tests read the run) erases what the coordinator decided, and every budget still accounts."""
    shutil.copytree(capped.tmp / "workspace", tmp_path / "workspace")
    shred = fedgov(tmp_path, "audit", "shred", f"run:{capped.run_id}", "--actor", "dpo", "--reason", "erasure request")
    assert shred.returncode == 0
    unreadable = fedgov(tmp_path, "audit", "log", "--run", capped.run_id, "--type", et.ROUND_SELECTION, "--decrypt",
                        "--format", "json").stdout
    assert "<key destroyed>" in unreadable and "selected" not in unreadable
    assert json.loads(fedgov(tmp_path, "privacy", "budget", "--format", "json").stdout) == budget


def test_one_node_can_be_asked_for_and_a_typo_names_the_closest(capped):
    [row] = json.loads(fedgov(capped.tmp, "privacy", "budget", "--node", CAPPED, "--format", "json").stdout)
    assert row["node_id"] == CAPPED and row["releases"] == 1
    typo = fedgov(capped.tmp, "privacy", "budget", "--node", "sim-001", check=False)
    assert typo.returncode == 2 and "did you mean 'sim-0001'" in typo.stderr and "Traceback" not in typo.stderr
    assert len(typo.stderr.strip().splitlines()) == 1


def test_the_nodes_own_record_shows_its_consent_valid_and_why_it_was_left_out(capped):
    subject = json.loads(fedgov(capped.tmp, "audit", "subject", CAPPED, "--format", "json").stdout)
    rows = [(r["round"], r["selection"], r["exclusion_reason"], r["consent_state"]) for r in subject["runs"][0]["rounds"]]
    assert rows == [(1, "selected", None, "valid"), (2, "excluded", "privacy-budget", "valid"),
                    (3, "excluded", "privacy-budget", "valid")]


def test_a_client_side_clipping_run_signs_clipped_updates_and_records_its_releases(tmp_path):
    run = Run(tmp_path, "--nodes", "3", "--rounds", "2", "--dp", "client-fixed", "--dp-clipping-norm", "0.5",
              "--dp-noise-multiplier", "2")
    assert run.of(et.ROUND_REJECTED) == []  # every clipped update's signature verified, and every norm <= C
    for r in (1, 2):
        assert len(run.of(et.ROUND_REPLY, r)) == 3
        assert all(p["metrics"]["dp-weight"] == 1 for _, p in run.of(et.ROUND_REPLY, r))
        [(_, event)] = run.of(et.ROUND_PRIVACY, r)
        assert event["dp"] == "client-fixed" and event["clipping_norm"] == 0.5 and event["noise_multiplier"] == 2
        assert event["participants"] == ["sim-0000", "sim-0001", "sim-0002"]
    shown = json.loads(fedgov(tmp_path, "privacy", "budget", "--run", run.run_id, "--format", "json").stdout)
    independent = recompute([p for _, p in run.of(et.ROUND_PRIVACY)])
    assert {row["node_id"]: row["epsilon_spent"] for row in shown} == pytest.approx(independent, rel=1e-9)
