"""Attacks on issue 12: node summaries, privacy budgets and retraining triggers.

Each test is one attack and asserts the SAFE outcome. A test that passes is a defence confirmed (or a
finding fixed on the attack12 branch); a test marked `xfail(strict=True, reason="FINDING: ...")` is an
attack that works today.

Attackers: (a) a hostile node (its summary is hostile input); (b) the operator, who holds the database,
the keys and the run config; (c) a careless user at the command line. Ledgers are built with the
governance API, no Flower.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fedgov.summaries import Reference, SummaryRule, summarize, summary_text
from governance import entry_types as et
from governance.errors import UsageError
from governance.ledger import EntryDraft, Ledger, create_workspace
from governance.monitoring.link import trigger_cause, trigger_link
from governance.privacy.accounting import ORDERS, epsilon
from governance.privacy.budget import node_budgets, project
from governance.privacy.events import Release
from governance.workspace import Workspace
from server.summary_checks import parse_summary, structure_problem
from tests.fedgov_command import PASSPHRASE, run_fedgov

REFERENCE = Reference(3, "test", ("age",), {"age": (10.0, 20.0)}, ("common", "rare"))


# -- (a) a node's own summary must not give away a small count --------------------------------------


def _hidden_total(summary: dict, counts: list) -> int:
    """What the coordinator learns about the suppressed counts: rows minus what is shown."""
    return summary["rows"] - sum(c for c in counts if c is not None)


def test_a_rare_label_is_not_given_away_by_rows_minus_the_shown_labels():
    """FIXED (high): 40 rows of `common` and 2 of `rare`, k = 5: `rare` was null but rows - 40 = 2 told it
    exactly. Now the hidden total is at least k (the smallest shown count is suppressed with it)."""
    x = np.full((42, 1), 15.0)
    y = np.array([0] * 40 + [1] * 2)
    summary = summarize(x, y, REFERENCE, SummaryRule(True, 5))
    labels = [summary["labels"][n] for n in REFERENCE.labels]
    assert labels[1] is None
    assert _hidden_total(summary, labels) >= 5 or all(c is None for c in labels)


def test_one_small_bin_is_not_given_away_by_the_remainder_either():
    """FIXED (high): bins of 1, 20 and 21 rows, k = 5: the lone suppressed bin's 1 was rows - 41."""
    x = np.array([[5.0]] + [[15.0]] * 20 + [[25.0]] * 21)
    y = np.zeros(42, dtype=int)
    summary = summarize(x, y, REFERENCE, SummaryRule(True, 5))
    counts = summary["features"]["age"]
    assert counts[0] is None and _hidden_total(summary, counts) >= 5
    assert summary["features"]["age"].count(None) == 2  # only the one bin more: the rest still shows drift
    problem = structure_problem(parse_summary(summary_text(summary))[0], REFERENCE, 5)
    assert problem is None  # the coordinator still accepts it


def test_nothing_is_suppressed_beyond_need_when_no_count_is_small():
    x = np.array([[5.0]] * 10 + [[15.0]] * 20 + [[25.0]] * 21)
    summary = summarize(x, np.array([0] * 25 + [1] * 26), REFERENCE, SummaryRule(True, 5))
    assert summary["features"]["age"] == [10, 20, 21] and summary["labels"] == {"common": 25, "rare": 26}


def test_label_counts_that_add_up_to_more_than_the_rows_are_refused():
    """FIXED (low): without noise a feature's counts were held to `rows`, the labels were not."""
    summary = summarize(np.full((42, 1), 15.0), np.array([0] * 21 + [1] * 21), REFERENCE, SummaryRule(True, 5))
    summary["labels"] = {"common": 42, "rare": 42}
    problem = structure_problem(parse_summary(summary_text(summary))[0], REFERENCE, 5)
    assert problem == "label counts sum to more than the 42 rows"


@pytest.mark.parametrize("text, says", [
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ('{"rows":NaN}', "not valid JSON"),
    ('{"rows":1e999}', "not valid JSON"),
    ("x" * 1_000_001, "at most 1000000 characters"),
])
def test_hostile_summary_texts_are_named_rejections(text, says):
    summary, problem = parse_summary(text)
    assert summary is None and says in problem


# -- (b) the operator: privacy budgets ---------------------------------------------------------------


def _release(run: str, round_: int, participants: tuple[str, ...], delta: float = 1e-5,
             caps: dict | None = None, scope: str = et.PRIVACY_SCOPE) -> EntryDraft:
    """A DP release as the coordinator records it (server/privacy_keeper.py), in the scope no shred erases; ledgers
    written before that scope existed hold them in the run's scope (`scope=et.run_scope(run)`)."""
    release = Release(run, round_, "server-fixed", 1.0, 1.0, delta, 3, len(participants), participants,
                      caps if caps is not None else {"n1": 5.0})
    return EntryDraft(et.ROUND_PRIVACY, release.payload({n: 0.0 for n in participants}), scope,
                      run_id=run, round=round_)


@pytest.fixture
def spent(tmp_path: Path) -> Workspace:
    """n1 past a cap of 5 at delta 1e-5 after two releases of run r1; then run r2, its operator choosing delta 0.5."""
    ws = create_workspace(tmp_path / ".fedgov", PASSPHRASE)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        ledger.append([_release("r1", 1, ("n1", "n2")), _release("r1", 2, ("n1", "n2")),
                       _release("r2", 1, ("n1",), delta=0.5)], sign=True)
    return ws


def _budget(ws: Workspace, *args: str) -> dict:
    result = run_fedgov("privacy", "budget", "--format", "json", "--workspace", str(ws.path), *args)
    assert result.returncode == 0, result.stderr
    return {row["node_id"]: row for row in json.loads(result.stdout)}


def test_a_looser_delta_in_a_later_run_does_not_shrink_the_epsilon_shown(spent: Workspace):
    """FIXED (high): the budget was stated at the node's *latest* delta, so one run at --dp-delta 0.5 restated
    n1's three releases as epsilon ~1.2 instead of ~9: `fedgov privacy budget` under-reported by 7x."""
    n1 = _budget(spent, "--node", "n1")["n1"]
    assert n1["releases"] == 3 and n1["delta"] == 1e-5
    assert n1["epsilon_spent"] == pytest.approx(epsilon([1.0] * 3, 1e-5))
    assert n1["epsilon_spent"] > 5.0 and n1["remaining"] == 0.0


def test_a_looser_delta_does_not_let_a_spent_node_back_in_at_selection(spent: Workspace):
    """FIXED (high): the selection projected at the run's delta: a node over its cap at 1e-5 was selectable again
    in a run configured with --dp-delta 0.5."""
    with Ledger.open(spent, PASSPHRASE, write=False) as ledger:
        history = [Release.from_payload(e.run_id, e.round, ledger.read_payload(e))
                   for e in ledger.query(entry_type=et.ROUND_PRIVACY)][:2]
    assert epsilon([1.0] * 3, 0.5) < 5.0 < epsilon([1.0] * 3, 1e-5)  # the attack's arithmetic
    assert project(history, 1.0, 0.5, 5.0).exceeds


def test_epsilon_recomputed_by_hand_from_the_recorded_events(spent: Workspace):
    """The accounting claim: n2's epsilon from its round.privacy payloads alone, RDP of the Gaussian mechanism
    (alpha / (2 sigma^2) per release) and dp-accounting's conversion, equals what `fedgov privacy budget` shows."""
    with Ledger.open(spent, PASSPHRASE, write=False) as ledger:
        events = [ledger.read_payload(e) for e in ledger.query(entry_type=et.ROUND_PRIVACY)]
    mine = [e for e in events if "n2" in e["participants"]]
    assert len(mine) == 2 and {e["mechanism"] for e in mine} == {"gaussian"}
    orders = mine[0]["orders"]
    assert orders == list(ORDERS)
    delta = min(e["delta"] for e in mine)
    best = math.inf
    for a in orders:
        rdp = sum(a / (2 * e["noise_multiplier"] ** 2) for e in mine)
        if a > 1.01:
            best = min(best, rdp + math.log1p(-1 / a) - math.log(delta * a) / (a - 1))
    rho = sum(1 / (2 * e["noise_multiplier"] ** 2) for e in mine)  # zCDP of the two releases: 1
    assert rho < best <= rho + 2 * math.sqrt(rho * math.log(1 / delta))  # within the classic conversion's bound
    assert _budget(spent, "--node", "n2")["n2"]["epsilon_spent"] == pytest.approx(max(best, 0.0), rel=1e-9)


def test_a_release_with_a_huge_integer_multiplier_is_one_line_not_a_traceback():
    with pytest.raises(UsageError, match="cannot be accounted"):
        Release.from_payload("r", 1, {"noise_multiplier": 10**400, "delta": 1e-5, "clipping_norm": 1.0,
                                      "mechanism": "gaussian", "sample_size": 1, "participants": ["n1"],
                                      "dp": "server-fixed", "population": 1, "selected": 1})


def test_budgets_never_report_less_than_the_strictest_delta_over_every_run():
    releases = [Release("r1", 1, "server-fixed", 1.0, 1.0, 1e-7, 1, 1, ("n1",), {}),
                Release("r2", 1, "server-fixed", 1.0, 1.0, 1e-3, 1, 1, ("n1",), {})]
    [n1] = node_budgets(releases, ["n1"])
    assert n1.delta == 1e-7 and n1.epsilon_spent == pytest.approx(epsilon([1.0, 1.0], 1e-7))


# -- (b) the operator: retraining triggers -------------------------------------------------------------


def _trigger(ledger: Ledger, decision: str, command: str = "watch") -> int:
    [seq] = ledger.append([EntryDraft(et.MONITOR_TRIGGER, {"decision": decision, "fired": ["drift-share"],
                                                           "reason": "r", "command": command}, et.MONITOR_SCOPE)])
    return seq


def _answer(ledger: Ledger, run_id: str, seq: int) -> None:
    ledger.append([EntryDraft(et.RUN_STARTED, {"trigger": trigger_link(ledger, seq)}, et.run_scope(run_id),
                              run_id=run_id)])


def test_a_run_cannot_claim_a_decision_not_to_retrain_as_its_cause(ledger: Ledger):
    """FIXED (medium): `--retrain-trigger S` took any monitor.trigger entry, a `check` that decided no-retrain
    included, so a run could claim a cause the ledger says never called for retraining."""
    seq = _trigger(ledger, "no-retrain", command="check")
    assert trigger_link(ledger, seq)["seq"] == seq  # the index alone cannot tell
    with pytest.raises(UsageError, match=f"--retrain-trigger {seq} decided 'no-retrain', not 'retrain'"):
        trigger_cause(ledger, seq)


def test_one_retrain_decision_cannot_be_replayed_to_start_a_second_run(ledger: Ledger):
    """FIXED (medium): the same seq could be given to any number of runs, each claiming it as its cause; the
    cooldown and "already acted on" only held the watch, not `fedgov sim run --retrain-trigger`."""
    seq = _trigger(ledger, "retrain")
    assert trigger_cause(ledger, seq)["seq"] == seq
    _answer(ledger, "r2", seq)
    with pytest.raises(UsageError, match=f"--retrain-trigger {seq} was already answered by run r2"):
        trigger_cause(ledger, seq)


def test_sim_run_refuses_a_no_retrain_trigger_in_one_line_before_anything_starts(tmp_path: Path):
    ws = create_workspace(tmp_path / ".fedgov", PASSPHRASE)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        seq = _trigger(ledger, "no-retrain", command="check")
    done = run_fedgov("sim", "run", "--nodes", "2", "--rounds", "1", "--workspace", str(ws.path),
                      "--out", str(tmp_path / "run"), "--retrain-trigger", str(seq), timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and f"--retrain-trigger {seq} decided 'no-retrain'" in done.stderr
    with Ledger.open(ws, PASSPHRASE) as ledger:
        assert ledger.query(entry_type=et.RUN_STARTED) == []


# -- (c) the careless user ---------------------------------------------------------------------------


@pytest.mark.parametrize("policy, says", [
    ("[triggers\n", "policy"),
    ("[triggers]\ndrift_share = 'a lot'\n", "drift_share"),
    ("[triggers]\ndrift_share = nan\n", "drift_share"),
    ("[triggers]\naccuracy_dorp = 0.1\n", "accuracy_dorp"),
    ("", "policy"),
    ("a = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),  # FIXED (low): was a RecursionError traceback
])
def test_a_bad_policy_file_is_one_line_and_exit_2(tmp_path: Path, policy: str, says: str):
    ws = create_workspace(tmp_path / ".fedgov", PASSPHRASE)
    path = tmp_path / "policy.toml"
    path.write_text(policy)
    done = run_fedgov("monitor", "check", "--policy", str(path), "--workspace", str(ws.path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and says in done.stderr and "Traceback" not in done.stderr


def test_privacy_budget_on_an_empty_ledger_is_an_empty_answer(tmp_path: Path):
    ws = create_workspace(tmp_path / ".fedgov", PASSPHRASE)
    done = run_fedgov("privacy", "budget", "--format", "json", "--workspace", str(ws.path))
    assert done.returncode == 0 and json.loads(done.stdout) == []
    typo = run_fedgov("privacy", "budget", "--node", "n1", "--workspace", str(ws.path))
    assert typo.returncode == 2 and typo.stderr.count("\n") == 1 and "--node 'n1'" in typo.stderr


def test_monitor_check_on_an_empty_ledger_is_one_line(tmp_path: Path):
    ws = create_workspace(tmp_path / ".fedgov", PASSPHRASE)
    policy = tmp_path / "policy.toml"
    policy.write_text("[triggers]\ndrift_share = 0.3\n")
    done = run_fedgov("monitor", "check", "--policy", str(policy), "--workspace", str(ws.path))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    typo = run_fedgov("monitor", "check", "--policy", str(policy), "--run", "nope", "--workspace", str(ws.path))
    assert typo.returncode == 2 and typo.stderr.count("\n") == 1 and "Traceback" not in typo.stderr


def _keeper(ledger: Ledger):
    from fedgov.settings import RunSettings
    from server.privacy_keeper import PrivacyKeeper
    from server.run_entries import RunEntries

    settings = RunSettings.from_run_config({"dp": "server-fixed", "dp-noise-multiplier": 1.0,
                                            "privacy-budgets": "n1:5"})
    return PrivacyKeeper(RunEntries(ledger, "r9", settings.to_run_config()), settings, {})


def test_deleting_a_release_from_the_database_does_not_reset_a_budget_at_selection(tmp_path: Path):
    """FIXED (high): the operator deletes n1's last round.privacy row (and the checkpoints past it) with SQL. The
    next run's gate recomputed from what was left, so n1, over its cap, was drawn again and trained; only a signed
    checkpoint after the round's evaluation, or `fedgov audit verify`, noticed. Now the gate first checks that the
    ledger extends what this workspace signed: a rolled-back ledger selects no node."""
    from governance.consent import ConsentCheck
    from governance.errors import PolicyError
    from tests.governance.attacks import sql

    ws = create_workspace(tmp_path / ".fedgov", PASSPHRASE)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        first, last = ledger.append([_release("r1", 1, ("n1",)), _release("r1", 2, ("n1",))], sign=True)
        gated, _ = _keeper(ledger).gate({"n1": ConsentCheck("n1", "valid", "c-n1")})
        assert gated["n1"].state == "privacy-budget"  # honest ledger: n1 is spent
    sql(ws, f"DELETE FROM fedgov_entries WHERE seq = {last}", f"DELETE FROM fedgov_checkpoints WHERE tree_size > {first}")
    with Ledger.open(ws, PASSPHRASE) as ledger:
        with pytest.raises(PolicyError, match="does not extend what this workspace signed"):
            _keeper(ledger).gate({"n1": ConsentCheck("n1", "valid", "c-n1")})


def test_a_rare_label_suppressed_in_the_summary_is_not_read_from_the_same_replys_fingerprint():
    """FIXED (medium): every reply carried the node's signed dataset fingerprint, whose label_counts were exact, so the
    coordinator read the rare label's 2 that the summary suppressed (and a site that shares no summary at all still
    sent them). Fingerprint version 2 holds hashes and the row count only."""
    from governance.fingerprint import fingerprint_arrays

    x = np.full((42, 1), 15.0)
    y = np.array([0] * 40 + [1] * 2)
    assert summarize(x, y, REFERENCE, SummaryRule(True, 5))["labels"]["rare"] is None
    sent = fingerprint_arrays(x, y).to_dict()  # what client/app.py signs and sends with the same reply
    assert set(sent) == {"content_hash", "schema_hash", "rows", "digest"} and sent["rows"] == 42



@pytest.mark.parametrize("content, says", [
    (b"[policy]\na = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
    (b"\xff\xfe[policy]\n", "not UTF-8 text"),
])
def test_a_hostile_site_file_is_one_line_not_a_traceback(tmp_path: Path, content: bytes, says: str):
    """FIXED (low): a site file (which holds the node's [monitoring] policy) nested too deeply, or not UTF-8, raised
    RecursionError or UnicodeDecodeError out of the node's start-up."""
    from client.policy import read_site_file

    path = tmp_path / "site.toml"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=says):
        read_site_file(path)



def test_a_site_cannot_swap_the_runs_noise_for_a_weaker_kind():
    """FIXED (low): "the site may share less, never more", but a site declaring Laplace b = 0.001 under a run asking
    Gaussian sigma = 10 got b = 0.001 (its scale was taken as is whenever the kinds differed): all but exact counts."""
    from fedgov.summaries import effective_rule

    rule = effective_rule(SummaryRule(True, 5, "gaussian", 10.0), SummaryRule(True, 5, "laplace", 0.001))
    assert rule.noise == "laplace" and rule.scale * math.sqrt(2) >= 10.0 - 1e-9
    louder = effective_rule(SummaryRule(True, 5, "laplace", 1.0), SummaryRule(True, 5, "gaussian", 50.0))
    assert (louder.noise, louder.scale) == ("gaussian", 50.0)



def test_a_node_given_two_caps_is_refused_not_the_last_taken():
    """FIXED (low): `--privacy-budgets sim-0001:1,sim-0001:10` silently capped sim-0001 at 10."""
    from fedgov.settings import RunSettings

    with pytest.raises(UsageError, match="sim-0001 already has a cap"):
        RunSettings.from_run_config({"dp": "server-fixed", "privacy-budgets": "sim-0001:1,sim-0001:10"})
    done = run_fedgov("sim", "run", "--dp", "server-fixed", "--privacy-budgets", "sim-0001:1,sim-0001:10")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "already has a cap" in done.stderr


def test_shredding_a_runs_scope_leaves_its_dp_releases_accountable(spent: Workspace):
    """FIXED (medium): round.privacy was written in the run's scope, so `fedgov audit shred run:R` (an erasure request)
    made R's releases unreadable and no budget could be accounted again: `fedgov privacy budget` failed and every
    later capped DP run selected no node. The releases hold no personal data; they are now in `ledger:privacy`."""
    with Ledger.open(spent, PASSPHRASE) as ledger:  # what the coordinator decided in r1, in r1's scope
        ledger.append([EntryDraft(et.RUN_FINISHED, {"status": "completed"}, et.run_scope("r1"), run_id="r1")],
                      sign=True)
    before = _budget(spent)
    shred = run_fedgov("audit", "shred", "run:r1", "--actor", "dpo", "--reason", "erasure request",
                       "--workspace", str(spent.path))
    assert shred.returncode == 0, shred.stderr
    assert _budget(spent) == before and before["n1"]["releases"] == 3


def test_the_scope_of_the_dp_releases_cannot_be_shredded(spent: Workspace):
    shred = run_fedgov("audit", "shred", "ledger:privacy", "--actor", "dpo", "--reason", "erasure request",
                       "--workspace", str(spent.path))
    assert shred.returncode == 2 and shred.stderr == (
        "error: the ledger:privacy scope holds the DP releases every privacy budget is accounted from and cannot be "
        "shredded (they hold no personal data)\n")
    assert _budget(spent)["n1"]["releases"] == 3


def test_releases_an_older_fedgov_wrote_in_a_shredded_run_scope_still_fail_closed(tmp_path: Path):
    """Before `ledger:privacy`, releases were written in their run's scope. Once that scope is shredded, no budget is
    shown (one line naming the release) rather than one that leaves its releases out."""
    ws = create_workspace(tmp_path / ".fedgov", PASSPHRASE)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        ledger.append([_release("r1", 1, ("n1",), scope=et.run_scope("r1")),
                       _release("r2", 1, ("n1",), scope=et.run_scope("r2"))], sign=True)
    assert run_fedgov("audit", "shred", "run:r1", "--actor", "dpo", "--reason", "erasure request",
                      "--workspace", str(ws.path)).returncode == 0
    result = run_fedgov("privacy", "budget", "--workspace", str(ws.path))
    assert result.returncode != 0 and result.stdout == "" and result.stderr.count("\n") == 1, result
    assert "seq 1" in result.stderr and "Traceback" not in result.stderr, result.stderr
