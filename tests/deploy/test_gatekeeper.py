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


@pytest.mark.parametrize("noise", [1.2, float("nan"), float("inf")])
def test_a_declared_dp_noise_is_not_taken_for_noise_applied(noise):
    """fedgov's app applies no DP yet: a run declaring some cannot keep that promise, so it is refused."""
    demanding = SitePolicy(("triage model",), (APPROVED,), 10, 10**6, 1.0)
    assert decide(demanding, BUNDLE, {**RUN, "dp-noise-multiplier": noise}) == (
        f"site policy: the run declares DP noise {noise!r}, which fedgov's app does not apply yet; this node does "
        "not take a declaration for noise")


@pytest.mark.parametrize("rounds", [0, -3])
def test_a_run_of_no_rounds_is_refused(rounds):
    assert decide(POLICY, BUNDLE, {**RUN, "num-server-rounds": rounds}) == f"site policy: a run of {rounds} rounds is no run"


def test_training_instructions_are_counted_per_run_outside_the_bundle(tmp_path):
    from deploy.gatekeeper import count_training

    assert [count_training(tmp_path / "runs", 7) for _ in range(3)] == [1, 2, 3]
    assert count_training(tmp_path / "runs", 8) == 1
    assert oct((tmp_path / "runs" / "7").stat().st_mode & 0o777) == "0o600"
