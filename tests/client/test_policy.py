"""A site's own policy: every rule stated, each refusal named, nothing allowed by omission."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from client.policy import SitePolicy
from governance.errors import UsageError

APP = "a" * 64
GOOD = {"purposes": ["triage model"], "app_hashes": [APP], "max_rounds": 10, "max_update_bytes": 1000,
        "min_dp_noise_multiplier": 0.0}


def _policy(**change) -> SitePolicy:
    return SitePolicy.from_mapping({**GOOD, **change}, "policy.toml")


def test_a_run_the_policy_allows_is_allowed():
    assert _policy().check_run(purpose="triage model", app_hash=APP, rounds=10) is None


@pytest.mark.parametrize("run,reason", [
    (dict(purpose="marketing", app_hash=APP, rounds=3), "site policy: purpose 'marketing' is not one this site allows"),
    (dict(purpose="triage model", app_hash="b" * 64, rounds=3),
     f"site policy: app bundle '{'b' * 64}' is not one this site approved"),
    (dict(purpose="triage model", app_hash=APP, rounds=11), "site policy: 11 rounds is more than this site's maximum of 10"),
])
def test_each_rule_refuses_by_name(run, reason):
    assert _policy().check_run(**run) == reason


def test_a_site_demanding_dp_refuses_a_run_without_it():
    assert _policy(min_dp_noise_multiplier=1.1).check_run(purpose="triage model", app_hash=APP, rounds=1) == (
        "site policy: DP noise multiplier 0 is below this site's minimum of 1.1")


def test_an_update_over_the_size_limit_is_not_sent():
    assert _policy().check_update(1000) is None
    assert _policy().check_update(1001) == "site policy: the update is 1001 bytes, more than this site's maximum of 1000"


def test_an_empty_app_list_approves_no_app():
    assert _policy(app_hashes=[]).check_run(purpose="triage model", app_hash=APP, rounds=1) is not None


@pytest.mark.parametrize("table,line", [
    ({k: v for k, v in GOOD.items() if k != "max_rounds"}, "policy.toml: [policy] lacks max_rounds; every rule must be stated"),
    ({**GOOD, "allow_all": True}, "policy.toml: [policy] has unknown key 'allow_all'; the keys are purposes, app_hashes, "
                                  "max_rounds, max_update_bytes, min_dp_noise_multiplier"),
    ({**GOOD, "app_hashes": ["ABC"]}, "policy.toml: policy app_hashes must be a list of SHA-256 hashes (64 lower-case hex)"),
    ({**GOOD, "purposes": "triage model"}, "policy.toml: policy purposes must be a list of non-empty strings"),
    ({**GOOD, "max_rounds": 0}, "policy.toml: policy max_rounds must be a whole number >= 1, got 0"),
    ({**GOOD, "max_update_bytes": True}, "policy.toml: policy max_update_bytes must be a whole number >= 1, got True"),
    ({**GOOD, "min_dp_noise_multiplier": float("nan")},
     "policy.toml: policy min_dp_noise_multiplier must be a finite number >= 0, got nan"),
])
def test_a_bad_policy_is_one_clear_line(table, line):
    with pytest.raises(UsageError) as raised:
        SitePolicy.from_mapping(table, "policy.toml")
    assert str(raised.value) == line


def test_a_policy_file_is_read_from_its_policy_table(tmp_path: Path):
    path = tmp_path / "policy.toml"
    path.write_text('[policy]\npurposes = ["triage model"]\napp_hashes = []\nmax_rounds = 5\n'
                    'max_update_bytes = 100\nmin_dp_noise_multiplier = 0\n')
    assert SitePolicy.load(path) == SitePolicy(("triage model",), (), 5, 100, 0.0)


@pytest.mark.parametrize("text,line", [
    ("[policy\n", "is not valid TOML"),
    ("[other]\n", "no [policy] table"),
])
def test_an_unreadable_policy_file_is_one_clear_line(tmp_path: Path, text: str, line: str):
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=re.escape(line)):
        SitePolicy.load(path)


def test_nan_never_satisfies_a_dp_minimum():
    demanding = _policy(min_dp_noise_multiplier=1.0)
    assert demanding.check_run(purpose="triage model", app_hash=APP, rounds=1,
                               dp_noise_multiplier=float("nan")) is not None
