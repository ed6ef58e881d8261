"""Run settings: every run-config key has a default in pyproject.toml, and bad values fail in one line."""

import tomllib
from pathlib import Path

import pytest

from fedgov.settings import FAULTS, RunSettings, default_run_config
from fedgov.strategies import STRATEGIES
from governance.errors import UsageError

REPO = Path(__file__).resolve().parents[2]


def _pyproject_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]


def test_every_run_config_key_of_pyproject_is_a_setting_and_nothing_else():
    assert list(RunSettings.from_run_config().to_run_config()) == list(_pyproject_config())


def test_the_defaults_are_pyprojects():
    assert RunSettings.from_run_config().to_run_config() == _pyproject_config() == default_run_config()


def test_the_cli_shows_and_uses_the_same_defaults():
    import typer.main

    from simulations.cli import app

    command = typer.main.get_command(app)
    run = command.commands["run"] if hasattr(command, "commands") else command  # one command: typer flattens it
    shown = {p.name: p.default for p in run.params}
    assert (shown["nodes"], shown["rounds"], shown["seed"], shown["strategy"], shown["purpose"]) == (
        _pyproject_config()["num-partitions"], _pyproject_config()["num-server-rounds"], _pyproject_config()["seed"],
        _pyproject_config()["strategy"], _pyproject_config()["purpose"])


def test_run_config_round_trips():
    settings = RunSettings.from_run_config({"strategy": "krum", "krum-byzantine": 1, "num-partitions": 7,
                                            "fraction-train": 0.5, "faults": "3:nan,5:forged",
                                            "revoke": "sim-0001@2", "drift": "sim-0002@3"})
    assert RunSettings.from_run_config(settings.to_run_config()) == settings


def test_the_rehearsal_strings_are_parsed_once_into_structure():
    rehearsal = RunSettings.from_run_config({"faults": " 3:nan, 5:forged", "revoke": "sim-0001@2",
                                             "drift": "sim-0002@3,sim-0004@1"}).rehearsal
    assert rehearsal.fault_plan == {3: "nan", 5: "forged"}
    assert rehearsal.revocations == {"sim-0001": 2}
    assert rehearsal.drift_plan == {"sim-0002": 3, "sim-0004": 1}


def test_the_rehearsal_strings_are_recorded_as_given():
    config = RunSettings.from_run_config({"faults": " 3:nan, 5:forged", "revoke": "sim-0001@2"}).to_run_config()
    assert (config["faults"], config["revoke"]) == (" 3:nan, 5:forged", "sim-0001@2")


def test_settings_come_in_four_groups():
    settings = RunSettings.from_run_config({"strategy": "fedprox", "purpose": "triage"})
    assert (settings.training.num_server_rounds, settings.strategy.name, settings.governance.purpose,
            settings.rehearsal.fault_plan) == (3, "fedprox", "triage", {})


@pytest.mark.parametrize("change,message", [
    ({"dataset": "mnist"}, "unknown dataset 'mnist'"),
    ({"strategy": "fedsgd"}, "unknown strategy 'fedsgd'"),
    ({"partition": "shards"}, "unknown partition 'shards'"),
    ({"alpha": 0.0, "partition": "dirichlet"}, "--alpha must be a finite number > 0"),
    ({"fraction-train": 0.0}, r"--fraction must be in \(0, 1\]"),
    ({"fraction-train": 1.5}, r"--fraction must be in \(0, 1\]"),
    ({"num-partitions": 1}, "below the minimum of 2 nodes for strategy fedavg"),
    ({"strategy": "krum", "krum-byzantine": 1, "num-partitions": 4}, "below the minimum of 5 nodes for strategy krum"),
    ({"faults": "2:explode"}, "bad fault '2:explode'"),
    ({"revoke": "sim-0001"}, "bad --revoke 'sim-0001': use NODE@ROUND"),
    ({"drift": "sim-0001@0"}, "bad --drift 'sim-0001@0': use NODE@ROUND"),
])
def test_bad_settings_are_refused_with_one_clear_message(change, message):
    with pytest.raises(UsageError, match=message):
        RunSettings.from_run_config(change)


def test_robust_aggregators_need_their_minimum_of_valid_replies():
    assert RunSettings.from_run_config({"min-valid-replies": 1}).aggregation_minimum() == 1
    assert RunSettings.from_run_config({"strategy": "krum", "krum-byzantine": 1}).aggregation_minimum() == 5
    assert RunSettings.from_run_config({"strategy": "fedtrimmedavg"}).aggregation_minimum() == 3


def test_one_table_builds_and_records_every_strategy():
    from flwr.serverapp import strategy as flower

    from fedgov.strategies import build_strategy, strategy_record

    for name, spec in STRATEGIES.items():
        settings = RunSettings.from_run_config({"strategy": name})
        assert type(build_strategy(settings.strategy, settings.training.lr)) is getattr(flower, spec.flower_class)
        assert strategy_record(settings.strategy, settings.training.lr)["name"] == name
        assert strategy_record(settings.strategy, settings.training.lr)["min_nodes"] == settings.min_nodes()


def test_every_fault_the_settings_accept_is_one_the_rehearsal_applies():
    from fedgov.settings import SIGNATURE_FAULTS
    from simulations.rehearsal import FAULTS as APPLIED, SIGNATURE_FAULTS as APPLIED_AFTER_SIGNING

    assert tuple(APPLIED) == FAULTS
    assert tuple(APPLIED_AFTER_SIGNING) == SIGNATURE_FAULTS


@pytest.mark.parametrize("config,message", [
    ({"num-server-rounds": "three"}, "num-server-rounds must be a int"),
    ({"seed": 2.7}, "seed must be a whole number"),
])
def test_a_mistyped_run_config_value_is_one_clear_error(config, message):
    with pytest.raises(UsageError, match=message):
        RunSettings.from_run_config(config)
