"""Server parts against Flower's real in-memory grid (tests/flower_grid.py)."""

from __future__ import annotations

import time

import pytest
from flwr.serverapp.strategy import FedAdam, FedAvg, FedMedian, FedProx, FedTrimmedAvg, Krum

from fedgov.settings import RunSettings
from fedgov.strategies import build_strategy
from governance.errors import PolicyError
from server.grid_view import SelectedGrid
from server.registration import wait_for_nodes
from tests.flower_grid import grid_with_nodes


def test_waiting_returns_once_the_expected_nodes_are_registered():
    grid, mapping = grid_with_nodes(4)
    assert wait_for_nodes(grid, 4, timeout=1) == sorted(mapping)


def test_waiting_for_missing_nodes_fails_clearly_after_the_timeout():
    grid, _ = grid_with_nodes(2)
    start = time.monotonic()
    with pytest.raises(PolicyError, match=r"only 2 of 3 nodes registered within 0.3 s"):
        wait_for_nodes(grid, 3, timeout=0.3)
    assert time.monotonic() - start < 2


def test_a_selected_grid_shows_only_the_selected_nodes():
    grid, mapping = grid_with_nodes(5)
    chosen = sorted(mapping)[:2]
    view = SelectedGrid(grid, chosen)
    assert view.get_node_ids() == chosen
    assert sorted(n.node_id for n in view.get_nodes()) == chosen


@pytest.mark.parametrize("name,cls,attribute,value", [
    ("fedavg", FedAvg, None, None),
    ("fedprox", FedProx, "proximal_mu", 0.01),
    ("fedadam", FedAdam, "eta", 0.01),
    ("fedtrimmedavg", FedTrimmedAvg, "beta", 0.2),
    ("krum", Krum, "num_malicious_nodes", 0),
    ("fedmedian", FedMedian, None, None),
])
def test_each_strategy_is_flowers_own_with_its_parameters(name, cls, attribute, value):
    strategy = build_strategy(RunSettings.from_run_config({"strategy": name}).strategy, lr=0.05)
    assert type(strategy) is cls
    assert strategy.fraction_train == 1.0  # fedgov's selection has already sampled the round
    if attribute:
        assert getattr(strategy, attribute) == value


def test_a_strategy_shown_a_selected_grid_trains_exactly_those_nodes(monkeypatch):
    from flwr.app import ArrayRecord, ConfigRecord
    from flwr.common.constant import SUPERLINK_NODE_ID
    from flwr.supercore.task_identity import TaskIdentity

    from fedgov.models import build_model

    # Messages carry the sender's identity, as the Simulation Engine sets it for the ServerApp.
    for attribute, value in (("_run_id", 7), ("_task_id", 11), ("_node_id", SUPERLINK_NODE_ID)):
        monkeypatch.setattr(TaskIdentity, attribute, value)
    grid, mapping = grid_with_nodes(6)
    chosen = sorted(mapping)[1:4]
    messages = build_strategy(RunSettings.from_run_config().strategy, lr=0.05).configure_train(
        1, ArrayRecord(build_model("breast-cancer").state_dict()), ConfigRecord({}), SelectedGrid(grid, chosen))
    assert sorted(m.metadata.dst_node_id for m in messages) == chosen


def test_a_round_whose_selection_cannot_be_written_sends_no_instruction(tmp_path, monkeypatch):
    """Governance fails closed: if the ledger refuses the selection entry, the strategy
    never builds a training message."""
    import sqlite3

    from flwr.app import ArrayRecord, ConfigRecord
    from sqlalchemy.exc import SQLAlchemyError

    from fedgov.models import build_model
    from governance import consent_store
    from governance.identity import NodeRegistry
    from governance.ledger import Ledger, create_workspace
    from server.app import coordinator
    from server.governed import GovernedStrategy
    from simulations.enroll import simulation_consent

    grid, mapping = grid_with_nodes(3)
    binding = {node: f"sim-{partition:04d}" for node, partition in mapping.items()}
    workspace = create_workspace(tmp_path / ".fedgov", "pw")
    with Ledger.open(workspace, "pw") as ledger:
        consent_store.grant(ledger, [simulation_consent(n, "team", "simulation") for n in binding.values()], "test")
    with sqlite3.connect(workspace.sqlite_path) as db:  # the database starts refusing writes
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON fedgov_entries BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    built = []
    with Ledger.open(workspace, "pw") as ledger:
        settings = RunSettings.from_run_config({"num-partitions": 3})
        roles = coordinator(ledger, "7", settings, binding, NodeRegistry())
        inner = build_strategy(settings.strategy, settings.training.lr)
        monkeypatch.setattr(inner, "configure_train", lambda *a: built.append(a) or [])
        strategy = GovernedStrategy(inner, selector=roles.selector.select)
        with pytest.raises((SQLAlchemyError, sqlite3.Error), match="disk full"):
            strategy.configure_train(1, ArrayRecord(build_model("breast-cancer").state_dict()), ConfigRecord({}), grid)
    assert built == []
