"""Lineage read back from the ledger, including after a node's data was crypto-shredded."""

from __future__ import annotations

from governance import entry_types as et
from governance.ledger import EntryDraft
from governance.lineage import affected_models
from governance.lineage_store import ERASED, load_versions

H0, H1 = "0" * 64, "1" * 64


def record_one_round(ledger) -> None:
    reply = {"node_id": "a", "team": "radiology", "consent_record_id": "c-a", "update_digest": "2" * 64,
             "dataset_fingerprint": {"digest": "3" * 64}}
    ledger.append([
        EntryDraft(et.RUN_STARTED, {"initial_model_hash": H0}, scope="run:r", run_id="r"),
        EntryDraft(et.ROUND_REPLY, reply, scope="node:a", run_id="r", round=1, node_id="a"),
        EntryDraft(et.ROUND_AGGREGATED, {"input_model_hash": H0, "output_model_hash": H1, "contributors": ["a"]},
                   scope="run:r", run_id="r", round=1, model_hash=H1),
    ])


def test_versions_name_their_contributors_fingerprints_and_consents(ledger):
    record_one_round(ledger)
    versions = {v.round: v for v in load_versions(ledger)}
    assert versions[0].model_hash == H0 and versions[1].parent_hash == H0
    [contribution] = versions[1].contributors
    assert (contribution.node_id, contribution.team, contribution.consent_record_id) == ("a", "radiology", "c-a")


def test_a_shredded_contributor_still_counts_with_its_details_erased(ledger):
    record_one_round(ledger)
    ledger.shred("node:a", actor="dpo", reason="erasure request")
    [contribution] = [v for v in load_versions(ledger) if v.round == 1][0].contributors
    assert contribution.node_id == "a" and contribution.team == ERASED
    assert affected_models(load_versions(ledger), "a") == [H1]
