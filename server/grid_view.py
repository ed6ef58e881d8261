"""Grids that stand between a strategy and the real grid: a delegating base, and the selected view.

Strategies sample through `grid.get_node_ids()` and talk through `send_and_receive()`.
Narrowing the first is how fedgov's selection applies to any Flower strategy unchanged
(`SelectedGrid`); watching the second is how the SecAgg+ run checks each stage's replies
(`server.secagg_watch.StageWatch`). Both extend `DelegatingGrid`, which passes everything on.
"""

from __future__ import annotations

from typing import Iterable

from flwr.app import Message
from flwr.serverapp import Grid


class DelegatingGrid(Grid):
    """Every Grid method passed on to the real grid (Flower's Grid is abstract: a view must name them all)."""

    def __init__(self, grid: Grid) -> None:
        self._grid = grid

    def set_run(self, run_id: int) -> None:
        self._grid.set_run(run_id)

    @property
    def run(self):  # type: ignore[override]
        return self._grid.run

    def create_message(self, *args, **kwargs) -> Message:  # deprecated in Flower; delegated
        return self._grid.create_message(*args, **kwargs)

    def get_node_ids(self) -> list[int]:
        return list(self._grid.get_node_ids())

    def get_nodes(self):  # type: ignore[override]
        return self._grid.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._grid.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return self._grid.send_and_receive(messages, timeout=timeout)


class SelectedGrid(DelegatingGrid):
    """Delegates to the real grid, but lists only the selected node ids."""

    def __init__(self, grid: Grid, selected: Iterable[int]) -> None:
        super().__init__(grid)
        self._selected = sorted(selected)

    def get_node_ids(self) -> list[int]:
        return list(self._selected)

    def get_nodes(self):  # type: ignore[override]
        return [n for n in self._grid.get_nodes() if n.node_id in self._selected]
