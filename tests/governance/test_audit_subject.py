"""`fedgov audit subject NODE`: one node's whole story, from any evidence source, erased parts shown as erased."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from governance.evidence import LedgerSource
from governance.ledger import Ledger, create_workspace
from governance.subject import subject_report
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE
from tests.governance.attacks import fails_with, succeeds
from tests.governance.query_story import M1, M2, M3, write_story


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = create_workspace(tmp_path_factory.mktemp("story") / ".fedgov", PASSPHRASE)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        write_story(ledger)
    return ws


@pytest.fixture(scope="module")
def reports(story: Workspace) -> dict[str, dict]:
    with Ledger.open(story, PASSPHRASE, write=False) as ledger:
        return {node: subject_report(LedgerSource(ledger), node) for node in ("n1", "n2", "n3")}


@pytest.fixture(scope="module")
def shredded_story(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The story, then n2's keys shredded."""
    ws = create_workspace(tmp_path_factory.mktemp("shredded") / ".fedgov", PASSPHRASE)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        write_story(ledger)
        ledger.shred("node:n2", "dpo", "GDPR Art. 17 request 12")
    return ws


@pytest.fixture(scope="module")
def shredded(shredded_story: Workspace) -> dict:
    with Ledger.open(shredded_story, PASSPHRASE, write=False) as ledger:
        return subject_report(LedgerSource(ledger), "n2")


def rounds(report: dict) -> list[tuple]:
    return [(r["run_id"], r["round"], r["selection"], r["exclusion_reason"], r["used_data"])
            for run in report["runs"] for r in run["rounds"]]


def test_every_round_that_used_the_nodes_data_or_excluded_it_is_listed(reports):
    assert rounds(reports["n1"]) == [("r1", 1, "selected", None, True), ("r1", 2, "selected", None, True),
                                     ("r2", 1, "excluded", "wrong-purpose", False)]


def test_each_run_carries_the_purpose_it_declared(reports):
    assert [(run["run_id"], run["purpose"]) for run in reports["n1"]["runs"]] == [("r1", "screening"),
                                                                                  ("r2", "research")]


def test_each_round_names_the_consent_record_in_force_at_selection(reports):
    assert [(r["round"], r["consent_record_id"], r["consent_state"]) for r in reports["n2"]["runs"][0]["rounds"]] \
        == [(1, "c-2", "valid"), (2, "c-2", "withdrawn")]


def test_a_withdrawal_is_listed_with_its_reason(reports):
    [withdrawal] = reports["n2"]["consent"]["withdrawals"]
    assert (withdrawal["record_id"], withdrawal["reason"]) == ("c-2", "left the study")
    assert reports["n2"]["consent"]["records"][0]["withdrawn_at"] == withdrawal["withdrawn_at"]


def test_models_built_on_the_node_directly_and_transitively_across_runs(reports):
    assert [(m["model_hash"], m["how"]) for m in reports["n2"]["models"]] == [(M1, "direct"), (M2, "transitive"),
                                                                             (M3, "transitive")]


def test_a_node_that_took_part_only_in_a_later_run_reaches_only_that_runs_model(reports):
    assert [(m["model_hash"], m["how"]) for m in reports["n3"]["models"]] == [(M3, "direct")]


def test_keys_not_shredded_say_so(reports):
    assert reports["n1"]["shredded"] is None and reports["n1"]["summary"]["shredded"] is False


def test_after_a_shred_the_report_names_the_shred(shredded):
    assert (shredded["shredded"]["actor"], shredded["shredded"]["reason"]) == ("dpo", "GDPR Art. 17 request 12")


def test_after_a_shred_consent_shows_as_erased_not_as_nothing(shredded):
    [record] = shredded["consent"]["records"]
    assert record["erased"] is True and record["purpose"] == "erased" and record["record_id"] == "erased"
    assert shredded["consent"]["withdrawals"][0]["reason"] == "erased"


def test_after_a_shred_contributions_stay_listed_with_their_details_erased(shredded):
    first = shredded["runs"][0]["rounds"][0]
    assert (first["reply"], first["contributed"], first["dataset_fingerprint"]) == ("replied", True, "erased")
    assert [m["model_hash"] for m in shredded["models"]] == [M1, M2, M3]


def test_after_a_shred_the_table_says_what_is_erased(shredded_story):
    out = succeeds("audit", "subject", "n2", "--workspace", str(shredded_story.path), env={"COLUMNS": "200"})
    assert out.splitlines()[2].startswith("keys shredded: yes, at ") and out.splitlines()[2].endswith(
        " by dpo (GDPR Art. 17 request 12; entry 22): what it sent and consented to reads as erased")


def test_after_a_shred_consent_list_shows_an_erased_row(shredded_story):
    rows = json.loads(succeeds("consent", "list", "--node", "n2", "--format", "json",
                               "--workspace", str(shredded_story.path)))
    assert [(r["principal"], r["record_id"], r["state"], r["purpose"]) for r in rows] == [
        ("n2", "erased", "erased", "erased")]


@dataclass(frozen=True)
class PlainEntry:
    seq: int
    entry_type: str
    timestamp: str
    run_id: str
    round: int | None
    node_id: str


class PlainSource:
    """Entries and payloads as plain data: what a bundle reader hands over."""

    description = "plain"

    def __init__(self, ledger: Ledger) -> None:
        rows = ledger.query()
        self.rows = [PlainEntry(e.seq, e.entry_type, e.timestamp, e.run_id, e.round, e.node_id) for e in rows]
        self.payloads = {e.seq: ledger.read_payload(e) for e in rows}

    def entries(self, entry_types):
        return [e for e in self.rows if e.entry_type in entry_types]

    def payload(self, entry):
        return self.payloads[entry.seq]


def test_any_source_holding_the_same_evidence_gives_the_same_answer(story, reports):
    with Ledger.open(story, PASSPHRASE, write=False) as ledger:
        plain = subject_report(PlainSource(ledger), "n1")
    assert plain == reports["n1"]


def test_the_command_prints_the_report_as_json(story, reports):
    printed = json.loads(succeeds("audit", "subject", "n2", "--format", "json", "--workspace", str(story.path)))
    assert printed == reports["n2"]


def test_the_table_opens_with_the_answer_in_words(story):
    out = succeeds("audit", "subject", "n2", "--workspace", str(story.path), env={"COLUMNS": "200"})
    assert out.splitlines()[1:3] == ["its data was used in 1 round(s) of 1 run(s); excluded from 1 round(s); "
                                     "3 model version(s) are built on it", "keys shredded: no"]


def test_an_unknown_node_is_an_error_naming_the_closest(story):
    fails_with(["audit", "subject", "n22", "--workspace", str(story.path)],
               "error: node 'n22' names nothing the evidence has recorded (it knows: n1, n2, n3; did you mean 'n2'...)",
               code=2)
