import json

import pytest
from prov.model import ProvDocument
from rich.console import Console

from governance.cli.lineage import render_tree
from governance.errors import UsageError
from governance.lineage import (
    Contribution,
    InconsistentLineageError,
    ModelVersion,
    UnknownModelError,
    affected_models,
    lineage_tree,
    to_prov_json,
)


def contrib(node, n):
    return Contribution(node, f"team-{node}", f"{n:02d}" * 32, f"consent-{node}", f"{n + 50:02d}" * 32)


# run r1: m1 <- (a) ; m2 <- (a, b) ; m3 <- (a, c)   (parents chain m0 -> m1 -> m2 -> m3)
# run r2 starts from m1 (before c joined r1): m4 <- (a) ; m5 <- (c)
VERSIONS = [
    ModelVersion("m1", "r1", 1, "m0", [contrib("a", 1)]),
    ModelVersion("m2", "r1", 2, "m1", [contrib("a", 2), contrib("b", 3)]),
    ModelVersion("m3", "r1", 3, "m2", [contrib("a", 4), contrib("c", 5)]),
    ModelVersion("m4", "r2", 1, "m1", [contrib("a", 6)]),
    ModelVersion("m5", "r2", 2, "m4", [contrib("c", 7)]),
]


def test_affected_models_start_at_first_contribution_and_include_descendants():
    assert affected_models(VERSIONS, "b") == ["m2", "m3"]


def test_affected_models_follow_descendants_into_another_run():
    assert affected_models(VERSIONS, "a") == ["m1", "m2", "m3", "m4", "m5"]


def test_affected_models_exclude_models_before_first_contribution():
    assert affected_models(VERSIONS, "c") == ["m3", "m5"]


def test_affected_models_are_ordered_by_run_then_round_whatever_input_order():
    assert affected_models(list(reversed(VERSIONS)), "a") == ["m1", "m2", "m3", "m4", "m5"]


def test_node_that_never_contributed_affects_nothing():
    assert affected_models(VERSIONS, "z") == []


def test_same_hash_with_different_facts_in_one_run_is_inconsistent():
    clash = ModelVersion("m2", "r1", 5, "m1", [])
    with pytest.raises(InconsistentLineageError, match="recorded twice"):
        affected_models([*VERSIONS, clash], "a")


def test_two_runs_making_identical_bytes_are_two_versions():
    # Deterministic training: a re-run with the same seed makes the same hashes.
    rerun = [ModelVersion("m1", "r3", 1, "m0", [contrib("z", 1)]), ModelVersion("m2", "r3", 2, "m1", [])]
    assert affected_models([*VERSIONS, *rerun], "z") == ["m1", "m2"]
    assert affected_models([*VERSIONS, *rerun], "b") == ["m2", "m3"]
    assert lineage_tree([*VERSIONS, *rerun], "m2")["run_id"] == "r3"
    assert lineage_tree([*VERSIONS, *rerun], "m2", run_id="r1")["contributors"][1]["node_id"] == "b"


def test_parent_cycle_is_inconsistent():
    cycle = [ModelVersion("x", "r", 1, "y", []), ModelVersion("y", "r", 2, "x", [])]
    with pytest.raises(InconsistentLineageError, match="own ancestor"):
        affected_models(cycle, "a")


def test_lineage_tree_walks_parents_to_the_unrecorded_initial_model():
    tree = lineage_tree(VERSIONS, "m3")
    chain = []
    node = tree
    while node is not None:
        chain.append((node["model_hash"], node["recorded"]))
        node = node["parent"]
    assert chain == [("m3", True), ("m2", True), ("m1", True), ("m0", False)]


def test_lineage_tree_lists_contributors_with_fingerprint_and_consent():
    tree = lineage_tree(VERSIONS, "m2")
    assert tree["contributors"] == [contrib("a", 2).to_dict(), contrib("b", 3).to_dict()]
    assert (tree["run_id"], tree["round"]) == ("r1", 2)


def test_lineage_tree_of_unknown_model_is_a_usage_error():
    with pytest.raises(UnknownModelError) as err:
        lineage_tree(VERSIONS, "nope")
    assert isinstance(err.value, UsageError)


def test_render_tree_shows_every_model_and_contributor():
    console = Console(width=200, record=True)
    console.print(render_tree(lineage_tree(VERSIONS, "m3")))
    text = console.export_text()
    for expected in ("model m3 (run r1, round 3)", "model m0 (not recorded", "node c (team team-c)", "consent consent-b"):
        assert expected in text


def prov_doc(doc: dict) -> ProvDocument:
    return ProvDocument.deserialize(content=json.dumps(doc), format="json")


def test_prov_json_is_accepted_by_the_prov_package():
    document = prov_doc(to_prov_json(VERSIONS, operator="alice"))
    assert len(document.get_records()) > 0


def test_prov_json_relation_counts():
    doc = to_prov_json(VERSIONS, operator="alice")
    updates = sum(len(v.contributors) for v in VERSIONS)  # 7
    parents = len(VERSIONS)  # every version has a parent
    counts = {relation: len(doc.get(relation, {})) for relation in (
        "wasGeneratedBy", "used", "wasDerivedFrom", "wasAssociatedWith", "wasAttributedTo", "actedOnBehalfOf")}
    assert counts == {
        "wasGeneratedBy": len(VERSIONS),
        "used": parents + updates,
        "wasDerivedFrom": parents + 2 * updates,
        "wasAssociatedWith": len(VERSIONS) + updates,
        "wasAttributedTo": updates,
        "actedOnBehalfOf": 3,
    }


def test_prov_json_relation_counts_survive_the_prov_round_trip():
    document = prov_doc(to_prov_json(VERSIONS, operator="alice"))
    kinds = [type(r).__name__ for r in document.get_records()]
    assert kinds.count("ProvDerivation") == len(VERSIONS) + 2 * 7
    assert kinds.count("ProvAttribution") == 7


def test_prov_json_has_entities_activities_and_agents():
    doc = to_prov_json(VERSIONS, operator="alice")
    assert len(doc["entity"]) == 6 + 7 + 7  # models m0..m5, updates, datasets
    assert set(doc["activity"]) == {"fedgov:round/r1/1", "fedgov:round/r1/2", "fedgov:round/r1/3",
                                    "fedgov:round/r2/1", "fedgov:round/r2/2"}
    assert set(doc["agent"]) == {"fedgov:operator/alice", "fedgov:node/a", "fedgov:node/b", "fedgov:node/c",
                                 "fedgov:team/team-a", "fedgov:team/team-b", "fedgov:team/team-c"}


def test_prov_json_without_operator_associates_rounds_with_nodes_only():
    doc = to_prov_json(VERSIONS)
    assert len(doc["wasAssociatedWith"]) == 7 and "fedgov:operator/alice" not in doc["agent"]


def test_prov_json_labels_agents_from_agents_info():
    doc = to_prov_json(VERSIONS, agents_info={"team-a": "Cardiology, Hospital A"})
    assert doc["agent"]["fedgov:team/team-a"]["prov:label"] == "Cardiology, Hospital A"


def test_prov_identifiers_percent_encode_odd_characters():
    versions = [ModelVersion("m1", "run 1/x", 1, None, [contrib("a", 1)])]
    assert "fedgov:round/run%201%2Fx/1" in to_prov_json(versions)["activity"]
