"""A node that stops mid-round is a dropout, recorded under its own name: whether Flower answers for it
("Node Unavailable", sent by the SuperLink itself) or nothing comes back before the round's time-out."""

from __future__ import annotations

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.supercore.task_identity import TaskIdentity
from flwr.serverapp.strategy import FedAvg

from fedgov.models import build_model
from server.governed import GovernedStrategy, RoundFacts
from tests.flower_grid import grid_with_nodes

SUPERLINK = 1  # the id Flower's SuperLink answers under for a node it lost


class Seen:
    def __init__(self) -> None:
        self.facts: RoundFacts | None = None

    def round_selected(self, facts: RoundFacts) -> None: ...

    def round_checked(self, facts: RoundFacts) -> None:
        self.facts = facts

    def round_aggregated(self, facts: RoundFacts) -> None: ...


@pytest.fixture
def round_sent(monkeypatch):
    """A governed FedAvg round sent to three nodes; each instruction has the id the grid gave it."""
    for attribute, value in (("_run_id", 7), ("_task_id", 11), ("_node_id", SUPERLINK_NODE_ID)):
        monkeypatch.setattr(TaskIdentity, attribute, value)
    grid, mapping = grid_with_nodes(3)
    nodes = sorted(mapping)
    seen = Seen()
    strategy = GovernedStrategy(FedAvg(fraction_train=1.0, min_available_nodes=1, min_train_nodes=1),
                                selector=lambda r, candidates: candidates, observers=[seen])
    arrays = ArrayRecord(build_model("breast-cancer", 1).state_dict())
    sent = list(strategy.configure_train(1, arrays, ConfigRecord({}), grid))
    for message in sent:  # as the grid does when it pushes them
        message.metadata.__dict__["_message_id"] = message.object_id
    return strategy, seen, {m.metadata.dst_node_id: m for m in sent}, nodes, arrays


def _good_reply(instruction: Message, arrays: ArrayRecord) -> Message:
    return Message(RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 10})}), reply_to=instruction)


def test_flowers_node_unavailable_reply_is_the_nodes_dropout(round_sent):
    strategy, seen, sent, (a, b, c), arrays = round_sent
    unavailable = Message(Error(code=5, reason="Node Unavailable"), reply_to=sent[b])
    unavailable.metadata.__dict__["_src_node_id"] = SUPERLINK  # Flower writes it, not the node
    strategy.aggregate_train(1, [_good_reply(sent[a], arrays), unavailable, _good_reply(sent[c], arrays)])
    assert [(r.node_id, r.reason) for r in seen.facts.rejected] == [(b, "node error 5: 'dropout: Node Unavailable'")]
    assert sorted(m.metadata.src_node_id for m in seen.facts.valid) == sorted([a, c])


def test_a_node_that_never_answers_is_a_dropout(round_sent):
    strategy, seen, sent, (a, b, c), arrays = round_sent
    strategy.aggregate_train(1, [_good_reply(sent[a], arrays), _good_reply(sent[b], arrays)])
    assert [(r.node_id, r.reason) for r in seen.facts.rejected] == [(c, "dropout: no reply within the round's "
                                                                        "time-out")]


def test_a_round_where_every_node_answers_has_no_dropout(round_sent):
    strategy, seen, sent, nodes, arrays = round_sent
    strategy.aggregate_train(1, [_good_reply(sent[n], arrays) for n in nodes])
    assert seen.facts.rejected == []
