"""Run settings: every run-config key has a default, bad values fail in one line."""

import tomllib
from dataclasses import replace

import pytest

from fedgov.settings import RunSettings
from governance.errors import UsageError
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_settings_field_is_a_run_config_key_with_a_default():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    assert set(config) == set(RunSettings().to_run_config())


def test_pyproject_defaults_match_the_settings_defaults():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    assert RunSettings.from_run_config(config) == RunSettings()


def test_run_config_round_trips():
    settings = RunSettings(strategy="krum", krum_byzantine=1, num_partitions=7, fraction_train=0.5)
    assert RunSettings.from_run_config(settings.to_run_config()) == settings


@pytest.mark.parametrize("change,message", [
    (dict(dataset="mnist"), "unknown dataset 'mnist'"),
    (dict(strategy="fedsgd"), "unknown strategy 'fedsgd'"),
    (dict(partition="shards"), "unknown partition 'shards'"),
    (dict(alpha=0.0, partition="dirichlet"), "--alpha must be a finite number > 0"),
    (dict(fraction_train=0.0), r"--fraction must be in \(0, 1\]"),
    (dict(fraction_train=1.5), r"--fraction must be in \(0, 1\]"),
    (dict(num_partitions=1), "below the minimum of 2 nodes for strategy fedavg"),
    (dict(strategy="krum", krum_byzantine=1, num_partitions=4), "below the minimum of 5 nodes for strategy krum"),
])
def test_bad_settings_are_refused_with_one_clear_message(change, message):
    with pytest.raises(UsageError, match=message):
        replace(RunSettings(), **change).check()


def test_robust_aggregators_need_their_minimum_of_valid_replies():
    assert RunSettings(min_valid_replies=1).aggregation_minimum() == 1
    assert RunSettings(strategy="krum", krum_byzantine=1).aggregation_minimum() == 5
    assert RunSettings(strategy="fedtrimmedavg").aggregation_minimum() == 3


@pytest.mark.parametrize("config,message", [
    ({"num-server-rounds": "three"}, "num-server-rounds must be a int"),
    ({"seed": 2.7}, "seed must be a whole number"),
])
def test_a_mistyped_run_config_value_is_one_clear_error(config, message):
    with pytest.raises(UsageError, match=message):
        RunSettings.from_run_config(config)
