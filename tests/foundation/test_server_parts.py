"""Server parts against Flower's real in-memory grid, with virtual nodes registered as the
Simulation Engine registers them."""

from __future__ import annotations

import time

import pytest
from flwr.proto.task_pb2 import Task
from flwr.server.superlink.fleet.vce.vce_api import _register_nodes
from flwr.server.superlink.linkstate import LinkStateFactory
from flwr.server.superlink.linkstate.in_memory_linkstate import RunRecord
from flwr.serverapp.strategy import FedAdam, FedAvg, FedMedian, FedProx, FedTrimmedAvg, Krum
from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME, NOOP_FEDERATION_ID
from flwr.supercore.object_store import ObjectStoreFactory
from flwr.supercore.run import Run
from flwr.superlink.federation import NoOpFederationManager
from flwr.superlink.grid import InMemoryGrid

from fedgov.settings import RunSettings
from governance.errors import PolicyError
from server.grid_view import SelectedGrid
from server.node_binding import bind_simulated
from server.registration import wait_for_nodes
from server.strategies import build_strategy


def grid_with_nodes(count: int) -> tuple[InMemoryGrid, dict[int, int]]:
    """An InMemoryGrid whose link state holds `count` virtual nodes (node id -> partition)."""
    factory = LinkStateFactory(FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(), ObjectStoreFactory())
    mapping = _register_nodes(count, factory)
    run = Run.create_empty(run_id=7)
    run.primary_task_id, run.federation_id = 11, NOOP_FEDERATION_ID
    state = factory.state()
    state.run_ids[7] = RunRecord(run=run)
    state.task_store[11] = Task(task_id=11, run_id=7)
    grid = InMemoryGrid(state_factory=factory)
    grid.set_run(run)
    return grid, mapping


def test_waiting_returns_once_the_expected_nodes_are_registered():
    grid, mapping = grid_with_nodes(4)
    assert wait_for_nodes(grid, 4, timeout=1) == sorted(mapping)


def test_waiting_for_missing_nodes_fails_clearly_after_the_timeout():
    grid, _ = grid_with_nodes(2)
    start = time.monotonic()
    with pytest.raises(PolicyError, match=r"only 2 of 3 nodes registered within 0.3 s"):
        wait_for_nodes(grid, 3, timeout=0.3)
    assert time.monotonic() - start < 2


def test_simulated_nodes_bind_to_their_partition_ids_in_registration_order():
    grid, mapping = grid_with_nodes(50)
    binding = bind_simulated(grid)
    assert all(binding[node] == f"sim-{partition:04d}" for node, partition in mapping.items())


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
    strategy = build_strategy(RunSettings(strategy=name))
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
    messages = build_strategy(RunSettings()).configure_train(
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
    from server.governed import GovernedStrategy
    from server.ledger_recorder import LedgerRecorder
    from simulations.enroll import simulation_consent

    grid, _ = grid_with_nodes(3)
    binding = bind_simulated(grid)
    workspace = create_workspace(tmp_path / ".fedgov", "pw")
    with Ledger.open(workspace, "pw") as ledger:
        consent_store.grant(ledger, [simulation_consent(n, "team", "simulation") for n in binding.values()], "test")
    with sqlite3.connect(workspace.sqlite_path) as db:  # the database starts refusing writes
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON fedgov_entries BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    built = []
    with Ledger.open(workspace, "pw") as ledger:
        recorder = LedgerRecorder(ledger, "7", RunSettings(num_partitions=3), binding, NodeRegistry())
        inner = build_strategy(RunSettings())
        monkeypatch.setattr(inner, "configure_train", lambda *a: built.append(a) or [])
        strategy = GovernedStrategy(inner, selector=recorder.select)
        with pytest.raises((SQLAlchemyError, sqlite3.Error), match="disk full"):
            strategy.configure_train(1, ArrayRecord(build_model("breast-cancer").state_dict()), ConfigRecord({}), grid)
    assert built == []
