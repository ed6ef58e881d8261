"""`fedgov audit log`: every filter narrows the answer; every filter value that names nothing is an error."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from governance.errors import UsageError

from governance.ledger import Ledger, create_workspace
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE, run_fedgov
from tests.governance.attacks import fails_with, succeeds
from tests.governance.query_story import write_story


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = create_workspace(tmp_path_factory.mktemp("story") / ".fedgov", PASSPHRASE)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        write_story(ledger)
    return ws


def log(ws: Workspace, *args: str) -> list[dict]:
    return json.loads(succeeds("audit", "log", "--format", "json", "--workspace", str(ws.path), *args))


@pytest.fixture(scope="module")
def entries(story: Workspace) -> list[dict]:
    return log(story)


def test_team_lists_the_entries_of_that_teams_nodes(story, entries):
    expected = [e["seq"] for e in entries if e["node_id"] in ("n1", "n2")]
    assert [e["seq"] for e in log(story, "--team", "radiology")] == expected


def test_purpose_lists_the_entries_of_the_runs_that_declared_it(story, entries):
    expected = [e["seq"] for e in entries if e["run_id"] == "r2"]
    assert [e["seq"] for e in log(story, "--purpose", "research")] == expected


def test_since_and_until_keep_the_entries_between_two_times(story, entries):
    start, stop = entries[8]["timestamp"], entries[14]["timestamp"]
    expected = [e["seq"] for e in entries if start <= e["timestamp"] <= stop]
    assert [e["seq"] for e in log(story, "--since", start, "--until", stop)] == expected


def test_until_a_date_includes_the_whole_of_that_day(story, entries):
    first, last = entries[0]["timestamp"][:10], entries[-1]["timestamp"][:10]
    assert len(log(story, "--since", first, "--until", last)) == len(entries)


def test_filters_that_are_all_known_but_match_nothing_answer_0_entries(story):
    result = run_fedgov("audit", "log", "--node", "n3", "--run", "r1", "--workspace", str(story.path))
    assert result.returncode == 0 and "0 entries" in result.stdout


def test_a_time_after_every_entry_is_an_empty_answer_not_an_error(story):
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).date().isoformat()
    assert log(story, "--since", tomorrow) == []


def refusal(since: str | None = None, until: str | None = None) -> str:
    """The error line `audit log` prints for these bounds (checked before the ledger is opened)."""
    from governance.cli.audit_query import log as audit_log

    with pytest.raises(UsageError) as err:
        audit_log(workspace=Path("/nonexistent"), since=since, until=until)
    return f"error: {err.value}"


def test_a_malformed_time_is_refused_naming_the_form():
    assert refusal(since="31/01/2026") == ("error: --since '31/01/2026' is not a date or time: give an ISO 8601 date "
                                           "or UTC time, e.g. 2026-01-31 or 2026-01-31T12:00:00Z")


def test_a_time_in_another_zone_is_refused():
    assert refusal(until="2026-01-31T12:00:00+02:00") == (
        "error: --until '2026-01-31T12:00:00+02:00' is not in UTC: give an ISO 8601 date or UTC time, e.g. "
        "2026-01-31 or 2026-01-31T12:00:00Z (end a time with Z)")


def test_since_after_until_is_refused():
    assert refusal(since="2026-02-01", until="2026-01-01") == (
        "error: --since 2026-02-01 is after --until 2026-01-01: nothing can be between them")


def test_an_unknown_team_is_an_error_with_the_closest_team(story):
    fails_with(["audit", "log", "--team", "radiolgy", "--workspace", str(story.path)],
               "error: --team 'radiolgy' names nothing this ledger has recorded (it knows: oncology, radiology; "
               "did you mean 'radiology'?)", code=2)


def test_an_unknown_purpose_is_an_error_with_the_declared_purposes(story):
    fails_with(["audit", "log", "--purpose", "screen", "--workspace", str(story.path)],
               "error: --purpose 'screen' is no purpose a run declared (it knows: research, screening; "
               "did you mean 'screening'?)", code=2)


def test_an_unknown_node_is_an_error_with_the_closest_node(story):
    fails_with(["audit", "log", "--node", "n01", "--workspace", str(story.path)],
               "error: --node 'n01' names nothing this ledger has recorded (it knows: n1, n2, n3; "
               "did you mean 'n1'?)", code=2)


def test_an_unknown_run_is_an_error(story):
    fails_with(["audit", "log", "--run", "run-9", "--workspace", str(story.path)],
               "error: --run 'run-9' names nothing this ledger has recorded (it knows: r1, r2)", code=2)


def test_a_round_the_run_never_had_is_an_error(story):
    fails_with(["audit", "log", "--run", "r2", "--round", "7", "--workspace", str(story.path)],
               "error: --round 7 names no round run 'r2' has recorded (it knows: 1)", code=2)


def test_a_mistyped_entry_type_is_an_error_with_the_closest_type(story):
    fails_with(["audit", "log", "--type", "round.replies", "--workspace", str(story.path)],
               "error: --type 'round.replies' names nothing this ledger has recorded (it knows: ...; did you mean "
               "'round.reply'...)", code=2)
