"""The governed strategy: wraps any Flower strategy through its five hooks.

It decides which nodes a round may train (the selector), shows the inner strategy only
those, drops malformed or unverifiable replies with a named reason, and tells observers
(the run report, the ledger) what happened. It never copies a strategy's loop or maths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Protocol, Sequence

from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedgov.protocol import ALLOWED_RECORDS, NamedArrays
from server.grid_view import SelectedGrid
from server.replies import DECODE_ERRORS, ArraySpec, Rejection, model_spec, split_replies

Selector = Callable[[int, Sequence[int]], Sequence[int]]
ReplyCheck = Callable[[int, Message, NamedArrays], "str | None"]


@dataclass
class RoundFacts:
    """What one training round did, as the observers see it."""

    server_round: int
    candidates: list[int]
    selected: list[int]
    input_arrays: ArrayRecord
    valid: list[Message] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    output_arrays: ArrayRecord | None = None
    train_metrics: MetricRecord | None = None
    failure: str | None = None


class RoundObserver(Protocol):
    """Receives each round's facts; raising stops the round (governance fails closed)."""

    def round_selected(self, facts: RoundFacts) -> None: ...

    def round_checked(self, facts: RoundFacts) -> None:
        """Replies are sorted into valid and rejected; the inner strategy has not yet
        aggregated (some Flower strategies consume the replies' arrays when they do)."""

    def round_aggregated(self, facts: RoundFacts) -> None: ...


def conform(arrays: ArrayRecord, spec: Mapping[str, ArraySpec]) -> ArrayRecord:
    """The aggregate in the model's own dtypes.

    Some strategies compute in float64 (FedAdam's moments) and return that; sent on, the next
    round's replies (float32, as the model trains) would all be rejected against it. The
    model is what the federation trains, so its dtypes win.
    """
    out = ArrayRecord()
    for key, array in arrays.items():
        expected = spec.get(key)
        if expected is not None and str(array.dtype) != expected.dtype:
            array = Array(array.numpy().astype(expected.dtype))
        out[key] = array
    return out


class GovernedStrategy(Strategy):
    """Delegate to `inner`, with fedgov's selection and reply checks around it.

    Parameters
    ----------
    inner : Strategy
        Any Flower Message-API strategy, configured to train every node it is shown.
    selector : Selector
        `(round, candidate node ids) -> selected node ids`; raises to refuse the round.
    observers : Sequence[RoundObserver]
        Told of every selection and aggregation, in order.
    min_valid_replies : int
        Below this many valid replies the round fails and the model is kept.
    allowed_records : Mapping[str, type]
        The records a reply may carry; anything else is rejected.
    reply_checks : Sequence[ReplyCheck]
        Further checks on well-formed replies (signatures), given each reply with its
        arrays already decoded; a returned reason rejects.
    """

    def __init__(
        self,
        inner: Strategy,
        *,
        selector: Selector,
        observers: Sequence[RoundObserver] = (),
        min_valid_replies: int = 1,
        allowed_records: Mapping[str, type] = ALLOWED_RECORDS,
        reply_checks: Sequence[ReplyCheck] = (),
    ) -> None:
        self.inner = inner
        self.selector = selector
        self.observers = list(observers)
        self.min_valid_replies = min_valid_replies
        self.allowed_records = allowed_records
        self.reply_checks = list(reply_checks)
        self._facts: RoundFacts | None = None
        self._spec: dict[str, ArraySpec] = {}
        self._sent: list[Message] = []  # this round's instructions; the grid gives each its id when it sends it

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        candidates = sorted(grid.get_node_ids())
        selected = sorted(self.selector(server_round, candidates))
        self._spec = model_spec(arrays)
        self._facts = RoundFacts(server_round, candidates, selected, arrays)
        for observer in self.observers:
            observer.round_selected(self._facts)
        self._sent = list(self.inner.configure_train(server_round, arrays, config, SelectedGrid(grid, selected)))
        return self._sent

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        facts = self._facts
        assert facts is not None and facts.server_round == server_round
        replies = [self._from_its_node(reply) for reply in replies]
        checked, rejected = split_replies(replies, self._spec, self.allowed_records)
        for check in self.reply_checks:
            still_valid = []
            for reply, arrays in checked:
                try:
                    reason = check(server_round, reply, arrays)
                except DECODE_ERRORS as err:  # hostile bytes in what the check parses: reject, go on
                    reason = f"malformed reply ({type(err).__name__})"
                if reason is None:
                    still_valid.append((reply, arrays))
                else:
                    rejected.append(Rejection(reply.metadata.src_node_id, reason))
            checked = still_valid
        valid = [reply for reply, _ in checked]
        answered = {reply.metadata.src_node_id for reply in replies}
        rejected += [Rejection(node, "dropout: no reply within the round's time-out")
                     for node in facts.selected if node not in answered]
        facts.valid, facts.rejected = valid, rejected
        for observer in self.observers:
            observer.round_checked(facts)
        if len(valid) < self.min_valid_replies:
            facts.failure = (
                f"round {server_round} failed: {len(valid)} valid replies, "
                f"below min-valid-replies={self.min_valid_replies}; the model is kept"
            )
        else:
            arrays, facts.train_metrics = self.inner.aggregate_train(server_round, valid)
            facts.output_arrays = None if arrays is None else conform(arrays, self._spec)
        for observer in self.observers:
            observer.round_aggregated(facts)
        return facts.output_arrays, facts.train_metrics

    def _from_its_node(self, reply: Message) -> Message:
        """A reply the SuperLink wrote for a node (Flower's "Node Unavailable" when a node stops mid-round)
        comes from the SuperLink's own id: it is attributed to the node the instruction went to, and named
        a dropout."""
        sent = {m.metadata.message_id: m for m in self._sent if m.metadata.message_id}
        instruction = sent.get(reply.metadata.reply_to_message_id)
        if instruction is None or reply.metadata.src_node_id == instruction.metadata.dst_node_id \
                or not reply.has_error():
            return reply
        return Message(Error(code=reply.error.code, reason=f"dropout: {reply.error.reason}"), reply_to=instruction)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        # Federated evaluation, where an inner strategy does it, reaches only this round's
        # selected (consenting) nodes too.
        selected = self._facts.selected if self._facts is not None else []
        return self.inner.configure_evaluate(server_round, arrays, config, SelectedGrid(grid, selected))

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return self.inner.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        self.inner.summary()
