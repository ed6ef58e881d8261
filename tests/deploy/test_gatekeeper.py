"""The gatekeeper's decision: the site policy, checked against the bundle's own hash, before any code is written."""

from __future__ import annotations

import hashlib

import pytest

from client.policy import SitePolicy
from deploy.gatekeeper import bundle_hash, decide

BUNDLE = b"PK\x03\x04 an app bundle"
APPROVED = hashlib.sha256(BUNDLE).hexdigest()
POLICY = SitePolicy(("triage model",), (APPROVED,), 10, 10**6, 0.0)
RUN = {"purpose": "triage model", "num-server-rounds": 3}


def test_an_approved_bundle_for_an_allowed_run_passes():
    assert decide(POLICY, BUNDLE, RUN) is None


def test_the_hash_is_recomputed_from_the_bytes_received():
    assert bundle_hash(BUNDLE) == APPROVED
    assert decide(POLICY, BUNDLE + b"one byte more", RUN) == (
        f"site policy: app bundle '{bundle_hash(BUNDLE + b'one byte more')}' is not one this site approved")


@pytest.mark.parametrize("config,reason", [
    ({"num-server-rounds": 3}, "site policy: the run declares no purpose"),
    ({"purpose": "triage model"}, "site policy: the run declares no whole number of rounds (num-server-rounds)"),
    ({**RUN, "num-server-rounds": True}, "site policy: the run declares no whole number of rounds (num-server-rounds)"),
    ({**RUN, "purpose": "marketing"}, "site policy: purpose 'marketing' is not one this site allows"),
    ({**RUN, "num-server-rounds": 11}, "site policy: 11 rounds is more than this site's maximum of 10"),
    ({**RUN, "dp-noise-multiplier": "lots"}, "site policy: the run's dp-noise-multiplier is not a number"),
])
def test_a_run_the_policy_does_not_allow_is_refused_by_name(config, reason):
    assert decide(POLICY, BUNDLE, config) == reason


def test_a_site_demanding_dp_refuses_a_run_without_it():
    demanding = SitePolicy(("triage model",), (APPROVED,), 10, 10**6, 1.0)
    assert decide(demanding, BUNDLE, RUN) == "site policy: DP noise multiplier 0 is below this site's minimum of 1"


def test_a_declared_dp_noise_without_dp_is_not_taken_for_noise_applied():
    """With dp "none" the app adds no noise, whatever dp-noise-multiplier says (its default is 1.0)."""
    demanding = SitePolicy(("triage model",), (APPROVED,), 10, 10**6, 1.0)
    assert decide(demanding, BUNDLE, {**RUN, "dp": "none", "dp-noise-multiplier": 1.2}) == (
        "site policy: DP noise multiplier 0 is below this site's minimum of 1")
    assert decide(POLICY, BUNDLE, {**RUN, "dp-noise-multiplier": 1.0}) is None  # a site that asks for none


@pytest.mark.parametrize("dp", ["server-fixed", "client-fixed"])
def test_a_site_demanding_dp_takes_a_run_applying_enough_and_refuses_too_little(dp):
    demanding = SitePolicy(("triage model",), (APPROVED,), 10, 10**6, 1.0)
    assert decide(demanding, BUNDLE, {**RUN, "dp": dp, "dp-noise-multiplier": 1.2}) is None
    assert decide(demanding, BUNDLE, {**RUN, "dp": dp, "dp-noise-multiplier": 0.5}) == (
        "site policy: DP noise multiplier 0.5 is below this site's minimum of 1")


@pytest.mark.parametrize("config,reason", [
    ({"dp": "server-adaptive", "dp-noise-multiplier": 1.0},
     "site policy: the run's dp mode 'server-adaptive' is not one fedgov applies (none, server-fixed, client-fixed)"),
    ({"dp": "server-fixed", "dp-noise-multiplier": float("nan")}, "site policy: the run's dp-noise-multiplier nan is no noise"),
    ({"dp": "server-fixed", "dp-noise-multiplier": float("inf")}, "site policy: the run's dp-noise-multiplier inf is no noise"),
    ({"dp": "client-fixed", "dp-noise-multiplier": 0}, "site policy: the run's dp-noise-multiplier 0 is no noise"),
])
def test_a_dp_declaration_that_applies_no_noise_is_refused_by_name(config, reason):
    assert decide(POLICY, BUNDLE, {**RUN, **config}) == reason


@pytest.mark.parametrize("rounds", [0, -3])
def test_a_run_of_no_rounds_is_refused(rounds):
    assert decide(POLICY, BUNDLE, {**RUN, "num-server-rounds": rounds}) == f"site policy: a run of {rounds} rounds is no run"


def test_training_instructions_are_counted_per_run_outside_the_bundle(tmp_path):
    from deploy.gatekeeper import count_training

    assert [count_training(tmp_path / "runs", 7) for _ in range(3)] == [1, 2, 3]
    assert count_training(tmp_path / "runs", 8) == 1
    assert oct((tmp_path / "runs" / "7").stat().st_mode & 0o777) == "0o600"
