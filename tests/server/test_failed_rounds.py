"""A deployed run in which a round built no model ends failed (Flower would call it completed), unless the
run allowed it: `fedgov run` then exits non-zero with the reason instead of "completed"."""

from __future__ import annotations

import io

import pytest
from flwr.app import ArrayRecord
from rich.console import Console

from fedgov.settings import RunSettings
from server.app import RoundsFailed, check_rounds
from server.governed import RoundFacts
from server.report import RunReport


def _report(failures: list[str | None]) -> RunReport:
    report = RunReport(None, len(failures), "7", console=Console(file=io.StringIO()))
    for number, failure in enumerate(failures, start=1):
        facts = RoundFacts(number, [1, 2], [1, 2], ArrayRecord(), failure=failure)
        report.round_selected(facts)
        report.round_aggregated(facts)
    return report


def test_a_run_whose_rounds_all_built_a_model_passes():
    check_rounds(_report([None, None]), RunSettings.from_run_config({}))


def test_a_failed_round_fails_the_run_naming_the_first_failure():
    with pytest.raises(RoundsFailed) as failed:
        check_rounds(_report([None, "round 2 failed: 0 valid replies, below min-valid-replies=1"]),
                     RunSettings.from_run_config({}))
    assert str(failed.value) == ("1 of 2 rounds failed (round 2: round 2 failed: 0 valid replies, below "
                                 "min-valid-replies=1); the ledger records each")


def test_a_run_that_allowed_failed_rounds_passes_with_them():
    check_rounds(_report(["round 1 failed: 0 valid replies"]),
                 RunSettings.from_run_config({"allow-failed-rounds": True}))


def test_allow_failed_rounds_takes_only_a_boolean():
    with pytest.raises(Exception, match="run config allow-failed-rounds must be true or false, got 'yes'"):
        RunSettings.from_run_config({"allow-failed-rounds": "yes"})
