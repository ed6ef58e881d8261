"""Per-node privacy accounting: a node's epsilon from the Gaussian releases it entered, and nothing else."""

from __future__ import annotations

import math

import pytest

from governance.errors import UsageError
from governance.privacy.accounting import ORDERS, accountant_name, epsilon
from governance.privacy.budget import node_budgets, project
from governance.privacy.events import Release
from tests.privacy_recompute import recompute


def _release(round_: int, participants: tuple[str, ...], sigma: float = 1.0, caps=None, run: str = "r1") -> Release:
    return Release(run, round_, "server-fixed", sigma, 1.0, 1e-5, 4, len(participants), participants, caps or {})


def test_one_release_costs_what_the_gaussian_mechanisms_rdp_gives():
    payload = _release(1, ("a",)).payload({})
    assert epsilon([1.0], 1e-5) == pytest.approx(recompute([payload])["a"], rel=1e-9)
    assert epsilon([1.0], 1e-5) == pytest.approx(4.7285, abs=1e-4)


def test_epsilon_grows_with_each_release_and_falls_with_more_noise():
    one, two, three = (epsilon([1.0] * k, 1e-5) for k in (1, 2, 3))
    assert 0 < one < two < three
    assert epsilon([4.0], 1e-5) < one
    assert epsilon([], 1e-5) == 0.0


@pytest.mark.parametrize("sigmas,delta", [([0.0], 1e-5), ([math.nan], 1e-5), ([math.inf], 1e-5), ([True], 1e-5),
                                          ([1.0], 0.0), ([1.0], 1.0)])
def test_a_release_that_cannot_be_accounted_is_an_error_not_zero(sigmas, delta):
    with pytest.raises(UsageError):
        epsilon(sigmas, delta)


def test_the_accountant_names_its_library_version_and_orders():
    import re

    assert re.fullmatch(rf"rdp \(dp-accounting 0\.6\.\d+, {len(ORDERS)} orders 1\.1\.\.1024\)", accountant_name())


def test_a_node_spends_only_on_the_releases_its_update_entered():
    releases = [_release(1, ("a", "b"), caps={"b": 5.0}), _release(2, ("a",), caps={"b": 5.0}),
                _release(3, ("a",), sigma=2.0, run="r2", caps={"b": 6.0})]
    budgets = {b.node_id: b for b in node_budgets(releases, ["a", "b", "c"])}
    assert budgets["a"].releases == 3 and budgets["a"].runs == ["r1", "r2"]
    assert budgets["a"].epsilon_spent == pytest.approx(epsilon([1.0, 1.0, 2.0], 1e-5))
    assert budgets["b"].epsilon_spent == pytest.approx(epsilon([1.0], 1e-5))
    assert budgets["b"].cap == 6.0 and budgets["b"].remaining == pytest.approx(6.0 - epsilon([1.0], 1e-5))
    assert budgets["c"].to_dict() == {"node_id": "c", "releases": 0, "runs": [], "epsilon_spent": 0.0,
                                      "delta": None, "cap": None, "remaining": None}


def test_the_projection_says_whether_one_more_release_passes_the_cap():
    history = [_release(1, ("a",))]
    assert not project([], 1.0, 1e-5, 5.0).exceeds  # 4.73 <= 5
    assert project(history, 1.0, 1e-5, 5.0).exceeds  # 7.08 > 5
    assert project(history, 1.0, 1e-5, 5.0).to_dict()["epsilon_spent"] == pytest.approx(epsilon([1.0], 1e-5))


@pytest.mark.parametrize("change", [{"noise_multiplier": "1"}, {"delta": math.nan}, {"sample_size": 9},
                                    {"mechanism": "laplace"}, {"participants": None}])
def test_a_recorded_release_that_cannot_be_accounted_is_named(change):
    payload = {**_release(2, ("a",)).payload({}), **change}
    with pytest.raises(UsageError, match="round.privacy of run r1 round 2 cannot be accounted"):
        Release.from_payload("r1", 2, payload)


def test_a_recorded_release_reads_back_as_written():
    release = _release(2, ("a", "b"), caps={"a": 3.0})
    assert Release.from_payload("r1", 2, release.payload({"a": 1.0})) == release
