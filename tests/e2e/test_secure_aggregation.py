"""Secure aggregation end to end: a real Flower simulation under SecAgg+, then what the ledger holds.

6 nodes x 2 rounds of FedAvg on breast-cancer with `--secagg`: sim-0005 never consented and
sim-0004 withdraws before round 2, so governance still decides who takes part (5 nodes, then 4);
sim-0001 forges the signature over its masked vector, so SecAgg+ drops it and sums the others.
"""

from __future__ import annotations

import base64

import pytest

from fedgov.secagg import PROTOCOL, fit_metrics_digest
from governance import entry_types as et
from governance.identity import reply_signing_payload
from tests.e2e.test_governed_rounds import Run, fedgov

pytestmark = pytest.mark.timeout(600)
ROUNDS = (1, 2)
STAGES = ("setup", "share_keys", "collect_masked_vectors", "unmask")


@pytest.fixture(scope="module")
def halted(tmp_path_factory) -> Run:
    """3 nodes x 1 round, two of them forging or not signing: one masked vector is left, below the threshold."""
    return Run(tmp_path_factory.mktemp("halted"), "--nodes", "3", "--rounds", "1", "--secagg",
               "--faults", "1:forged,2:unsigned", "--allow-failed-rounds")


@pytest.fixture(scope="module")
def secure(tmp_path_factory) -> Run:
    return Run(tmp_path_factory.mktemp("secagg"), "--nodes", "6", "--rounds", "2", "--secagg",
               "--no-consent", "sim-0005", "--revoke", "sim-0004@2", "--faults", "1:forged")


def test_the_run_completes_and_the_model_improves_over_the_initial_one(secure):
    assert [r["status"] for r in secure.rounds["rounds"]] == ["ok", "ok"]
    initial, final = secure.rounds["initial_eval"]["accuracy"], secure.rounds["rounds"][-1]["eval"]["accuracy"]
    assert final >= 0.85 and final > initial + 0.15
    [(_, end)] = secure.of(et.RUN_FINISHED)
    assert end["status"] == "finished"
    [(_, start)] = secure.of(et.RUN_STARTED)
    assert start["config"]["secagg"] is True


SELECTED = {1: ["sim-0000", "sim-0001", "sim-0002", "sim-0003", "sim-0004"],
            2: ["sim-0000", "sim-0001", "sim-0002", "sim-0003"]}
IN_THE_SUM = {r: [n for n in nodes if n != "sim-0001"] for r, nodes in SELECTED.items()}


def test_consent_still_decides_who_takes_part_and_is_recorded_first(secure):
    for r in ROUNDS:
        [(selection_entry, selection)] = secure.of(et.ROUND_SELECTION, r)
        [(secagg_entry, secagg)] = secure.of(et.ROUND_SECAGG, r)
        assert selection["selected"] == secagg["selected"] == SELECTED[r]
        assert selection_entry.seq < secagg_entry.seq
        # nobody outside the selection was ever sent a protocol message
        assert secagg["stages"]["setup"] == secagg["stages"]["share_keys"] == SELECTED[r]


def test_each_round_records_the_protocol_participation_and_the_aggregate(secure):
    for r in ROUNDS:
        [(_, secagg)] = secure.of(et.ROUND_SECAGG, r)
        [(agg_entry, agg)] = secure.of(et.ROUND_AGGREGATED, r)
        assert secagg["protocol"] == PROTOCOL and secagg["individual_updates_visible"] is False
        assert (secagg["num_shares"], secagg["reconstruction_threshold"]) == (3, 2)
        assert secagg["stages"]["collect_masked_vectors"] == secagg["stages"]["unmask"] == IN_THE_SUM[r]
        assert secagg["completed"] == agg["contributors"] == IN_THE_SUM[r] and secagg["dropped"] == ["sim-0001"]
        # the sum SecAgg+ released is the model the round archived
        assert secagg["aggregate_hash"] == agg["secagg_aggregate_hash"] == agg["output_model_hash"]
        assert agg_entry.model_hash == agg["output_model_hash"]
        assert set(agg["train_metrics"]) == {"train-loss", "local-loss", "local-accuracy"}
        assert len(secure.of(et.ROUND_EVALUATED, r)) == 1


def test_a_forged_masked_vector_is_a_named_secagg_dropout_and_the_round_goes_on(secure):
    for r in ROUNDS:
        [(entry, rejected)] = secure.of(et.ROUND_REJECTED, r)
        assert entry.node_id == rejected["node_id"] == "sim-0001"
        assert "bad-signature" in rejected["reason"] or "signature" in rejected["reason"]
    assert [r["status"] for r in secure.rounds["rounds"]] == ["ok", "ok"]


def test_no_reply_records_an_update_digest_only_the_signed_masked_vector(secure):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    replies = secure.of(et.ROUND_REPLY)
    assert sorted((e.round, p["node_id"]) for e, p in replies) == [(r, n) for r in ROUNDS for n in IN_THE_SUM[r]]
    for entry, reply in replies:
        assert "update_digest" not in reply and reply["individual_update_visible"] is False
        assert reply["metrics_digest"] == fit_metrics_digest(reply["metrics"], reply["num_examples"])
        assert reply["device"] == "cpu"  # the node's signed word: where it trained (fedgov/devices.py)
        payload = reply_signing_payload(secure.run_id, entry.round, reply["masked_update_digest"],
                                        reply["dataset_fingerprint"]["digest"], reply["metrics_digest"],
                                        device=reply["device"])
        key = Ed25519PublicKey.from_public_bytes(secure.registry.get(reply["node_id"]).public_key)
        key.verify(base64.b64decode(reply["signature"]), payload)  # raises if forged
        assert reply["num_examples"] == reply["dataset_fingerprint"]["rows"]


def test_round_secagg_is_operator_readable_and_audit_verify_passes(secure):
    from governance.access_policy import is_sealed

    assert not is_sealed(et.ROUND_SECAGG)
    assert fedgov(secure.tmp, "audit", "verify").stdout.startswith("checked ")


def test_lineage_names_the_contributors_and_says_their_updates_were_masked(secure):
    import json

    [(_, agg)] = secure.of(et.ROUND_AGGREGATED, 2)
    tree = json.loads(fedgov(secure.tmp, "lineage", "show", agg["output_model_hash"], "--json").stdout)
    assert [c["node_id"] for c in tree["contributors"]] == agg["contributors"]
    assert {c["update_digest"] for c in tree["contributors"]} == {"SecAgg+"}


def test_when_secagg_halts_the_round_fails_is_recorded_and_the_model_is_kept(halted):
    assert [r["status"] for r in halted.rounds["rounds"]] == ["failed"]
    [(_, secagg)] = halted.of(et.ROUND_SECAGG, 1)
    assert secagg["stages"]["collect_masked_vectors"] == ["sim-0000"] and secagg["stages"]["unmask"] == []
    assert secagg["completed"] == [] and secagg["aggregate_hash"] is None
    assert secagg["dropped"] == ["sim-0000", "sim-0001", "sim-0002"]
    [(_, failed)] = halted.of(et.ROUND_FAILED, 1)
    assert "SecAgg+ halted before stage unmask" in failed["reason"]
    reasons = {p["node_id"]: p["reason"] for _, p in halted.of(et.ROUND_REJECTED, 1)}
    assert "signature" in reasons["sim-0001"] and reasons["sim-0002"].startswith("unsigned")
    assert "halted" in reasons["sim-0000"]
    assert halted.of(et.ROUND_REPLY) == [] and halted.of(et.ROUND_AGGREGATED) == []
    [(_, start)] = halted.of(et.RUN_STARTED)
    [(_, end)] = halted.of(et.RUN_FINISHED)
    assert end["final_model_hash"] == start["initial_model_hash"]
    assert fedgov(halted.tmp, "audit", "verify").stdout.startswith("checked ")
