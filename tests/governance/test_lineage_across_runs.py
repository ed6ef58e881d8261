"""Lineage crosses runs: a run that starts from another run's model continues that model's history."""

from __future__ import annotations

from governance.lineage import Contribution, ModelVersion, affected_models, lineage_tree


def contrib(node: str) -> Contribution:
    return Contribution(node, "t", "d", "c", f"u-{node}")


# As governance/lineage_store.py reads them: every run has its initial model as a round-0 version.
VERSIONS = [
    ModelVersion("m0", "r1", 0, None, []),
    ModelVersion("m1", "r1", 1, "m0", [contrib("a")]),
    ModelVersion("m1", "r2", 0, None, []),
    ModelVersion("m2", "r2", 1, "m1", [contrib("b")]),
]


def test_a_nodes_update_reaches_the_models_of_a_run_started_from_its_model():
    assert affected_models(VERSIONS, "a") == ["m1", "m2"]


def test_the_tree_of_a_later_runs_model_walks_back_into_the_earlier_run():
    tree = lineage_tree(VERSIONS, "m2")
    chain = []
    while tree is not None:
        chain.append((tree["model_hash"], tree.get("run_id"), tree.get("round")))
        tree = tree["parent"]
    assert chain == [("m2", "r2", 1), ("m1", "r2", 0), ("m1", "r1", 1), ("m0", "r1", 0)]


def test_two_runs_from_the_same_fresh_model_stay_apart():
    fresh = [ModelVersion("m0", "r1", 0, None, []), ModelVersion("m1", "r1", 1, "m0", [contrib("a")]),
             ModelVersion("m0", "r2", 0, None, []), ModelVersion("m2", "r2", 1, "m0", [contrib("b")])]
    assert affected_models(fresh, "a") == ["m1"]
