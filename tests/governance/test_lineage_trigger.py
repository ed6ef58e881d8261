"""A retraining run's lineage links to the monitor.trigger entry that caused it: tree, CLI and PROV."""

from __future__ import annotations

import io
import json

import pytest
from prov.model import ProvDocument

from governance import entry_types as et
from governance.errors import UsageError
from governance.ledger import EntryDraft, Ledger
from governance.lineage import lineage_tree, to_prov_json
from governance.lineage_store import load_versions
from governance.monitoring.link import trigger_link
from tests.fedgov_command import run_fedgov

H0, H1, H2 = "0" * 64, "1" * 64, "2" * 64
REPLY = {"node_id": "a", "team": "radiology", "consent_record_id": "c-a", "update_digest": "9" * 64,
         "dataset_fingerprint": {"digest": "8" * 64}}


def retrained(ledger: Ledger) -> dict:
    """Run r1, a check that decided to retrain, and run r2 that answers it; returns r2's trigger link."""
    def run(run_id: str, initial: str, output: str, extra: dict) -> list[EntryDraft]:
        scope = et.run_scope(run_id)
        return [EntryDraft(et.RUN_STARTED, {"initial_model_hash": initial, **extra}, scope, run_id=run_id),
                EntryDraft(et.ROUND_REPLY, REPLY, "node:a", run_id=run_id, round=1, node_id="a"),
                EntryDraft(et.ROUND_AGGREGATED, {"input_model_hash": initial, "output_model_hash": output,
                                                 "contributors": ["a"]}, scope, run_id=run_id, round=1,
                           model_hash=output)]
    ledger.append(run("r1", H0, H1, {}))
    [seq] = ledger.append([EntryDraft(et.MONITOR_TRIGGER, {"decision": "retrain", "fired": ["drift-share"],
                                                           "reason": "fired drift-share"}, et.MONITOR_SCOPE)])
    link = trigger_link(ledger, seq)
    ledger.append(run("r2", H1, H2, {"trigger": link}))
    return link


def test_the_link_pins_the_entry_by_its_leaf_hash(ledger):
    link = retrained(ledger)
    assert link["leaf_hash"] == ledger.get(link["seq"]).leaf_hash.hex() and len(link["leaf_hash"]) == 64


def test_a_seq_that_names_no_trigger_is_refused(ledger):
    with pytest.raises(UsageError, match="names no ledger entry"):
        trigger_link(ledger, 999)
    retrained(ledger)
    started = ledger.query(entry_type=et.RUN_STARTED)[0].seq
    with pytest.raises(UsageError, match="names a run.started entry, not a monitor.trigger"):
        trigger_link(ledger, started)


def test_the_retraining_runs_models_carry_their_trigger_and_the_first_run_none(ledger):
    link = retrained(ledger)
    tree = lineage_tree(load_versions(ledger), H2)
    assert tree["run_id"] == "r2" and tree["trigger"] == {**link, "fired": ["drift-share"], "decision": "retrain",
                                                          "reason": "fired drift-share"}
    assert tree["parent"]["run_id"] == "r2" and tree["parent"]["trigger"]["seq"] == link["seq"]  # r2's round 0
    assert "trigger" not in tree["parent"]["parent"]  # r1's model: no trigger


def test_lineage_show_prints_the_trigger(workspace):
    with Ledger.open(workspace) as ledger:
        link = retrained(ledger)
    shown = run_fedgov("lineage", "show", H2[:12], "--workspace", str(workspace.path))
    assert shown.returncode == 0, shown.stderr
    assert f"retraining trigger: monitor.trigger seq {link['seq']}" in shown.stdout
    assert "fired drift-share" in shown.stdout and shown.stdout.count("retraining trigger") == 1
    as_json = json.loads(run_fedgov("lineage", "show", H2, "--json", "--workspace", str(workspace.path)).stdout)
    assert as_json["trigger"]["leaf_hash"] == link["leaf_hash"]


def test_prov_has_the_trigger_activity_that_started_and_informed_the_run(ledger):
    link = retrained(ledger)
    doc = to_prov_json(load_versions(ledger), operator="alice")
    trigger = f"fedgov:trigger/{link['seq']}"
    assert doc["activity"][trigger]["fedgov:leaf_hash"] == link["leaf_hash"]
    assert list(doc["wasStartedBy"].values()) == [{"prov:activity": "fedgov:round/r2/0", "prov:starter": trigger}]
    informed = sorted(r["prov:informed"] for r in doc["wasInformedBy"].values())
    assert informed == ["fedgov:round/r2/0", "fedgov:round/r2/1"]
    document = ProvDocument.deserialize(content=json.dumps(doc), format="json")
    buffer = io.StringIO()
    document.serialize(buffer, format="json")
    assert len(json.loads(buffer.getvalue())["wasStartedBy"]) == 1
