"""A Grid that shows a strategy only the nodes fedgov selected for the round.

Strategies sample through `grid.get_node_ids()` and talk through `send_and_receive()`.
Narrowing the first is how fedgov's selection applies to any Flower strategy unchanged.
"""

from __future__ import annotations

from typing import Iterable

from flwr.app import Message
from flwr.serverapp import Grid


class SelectedGrid(Grid):
    """Delegates to the real grid, but lists only the selected node ids."""

    def __init__(self, grid: Grid, selected: Iterable[int]) -> None:
        self._grid = grid
        self._selected = sorted(selected)

    def set_run(self, run_id: int) -> None:
        self._grid.set_run(run_id)

    @property
    def run(self):  # type: ignore[override]
        return self._grid.run

    def create_message(self, *args, **kwargs) -> Message:  # deprecated in Flower; delegated
        return self._grid.create_message(*args, **kwargs)

    def get_node_ids(self) -> list[int]:
        return list(self._selected)

    def get_nodes(self):  # type: ignore[override]
        return [n for n in self._grid.get_nodes() if n.node_id in self._selected]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._grid.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return self._grid.send_and_receive(messages, timeout=timeout)
