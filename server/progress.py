"""Round progress: how many of a round's nodes have replied, while the round runs.

Flower's `Grid.send_and_receive` pushes the round's messages, then pulls replies until all
have come or the time-out has passed, and returns them all at once: nothing in between is
visible. `ProgressGrid` does the same push and pull loop itself, with Flower's own time-out
semantics and poll interval (`pull_interval`), and tells a `ReplyProgress` after every pull
how many of the pushed messages have been answered.

`ProgressLine` shows it on the run's console, one line per round (`round 1/5: 37 of 100 nodes
replied`): on a terminal a live line that is redrawn as replies come and cleared when the
round's wait ends (its seconds tick while nothing comes: the first round waits for Ray's actors
to start); otherwise (a pipe, a file, Flower's log stream to `fedgov run`) plain lines,
only at a quarter (25, 50, 75, 100 %) reached at least one second after the round's previous
line, and after 10 s without one (a minute, once the wait is a minute old): a fast round adds
nothing, a slow one a few lines.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Protocol

from flwr.app import Message
from flwr.serverapp import Grid
from rich.console import Console
from rich.live import Live
from rich.text import Text

from server.grid_view import DelegatingGrid

# Flower 1.42's HttpGrid (deployment) sleeps 3 s between pulls in its send_and_receive and has no
# attribute for it; InMemoryGrid (simulation) has `pull_interval` (0.1 s by default).
HTTP_GRID_PULL_INTERVAL = 3.0
PLAIN_LINE_GAP = 1.0  # seconds: a plain progress line comes at least this long after the round's previous one


def pull_interval(grid: Grid) -> float:
    """The poll interval of the real grid under any views: what Flower's own send_and_receive sleeps."""
    while isinstance(grid, DelegatingGrid):
        grid = grid._grid
    interval = getattr(grid, "pull_interval", HTTP_GRID_PULL_INTERVAL)
    return float(interval) if isinstance(interval, (int, float)) and interval > 0 else HTTP_GRID_PULL_INTERVAL


class ReplyProgress(Protocol):
    """Told, for each send_and_receive that pushed something, how many of its messages have been answered."""

    def describe(self, messages: list[Message]) -> str:
        """What the wait is called (`round 1/5`), read from the messages before they are sent."""

    def waiting(self, label: str, pushed: int) -> None:
        """`pushed` messages went out for `label`; none has been answered yet."""

    def replied(self, answered: int, pushed: int) -> None:
        """`answered` of the `pushed` messages have a reply now (called after every pull)."""

    def ended(self, answered: int, pushed: int) -> None:
        """The wait is over: every message answered, or the time-out passed with `answered` of `pushed`."""


class ProgressGrid(DelegatingGrid):
    """A grid whose send_and_receive reports replies as they arrive; otherwise Flower's, unchanged.

    The loop is Flower 1.42's (`InMemoryGrid.send_and_receive`, `HttpGrid.send_and_receive`):
    push, then pull while `timeout` is None or the time is before push time + `timeout`, stop
    when every pushed message id has a reply, sleep the grid's own interval between pulls. So
    `timeout=0` pulls nothing, as in Flower.
    """

    def __init__(self, grid: Grid, progress: ReplyProgress, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(grid)
        self.progress = progress
        self._clock = clock
        self._sleep = sleep
        self._interval = pull_interval(grid)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        messages = list(messages)
        label = self.progress.describe(messages) if messages else ""  # before sending: a node may change them
        message_ids = set(self._grid.push_messages(messages))
        pushed = len(message_ids)
        del messages
        if pushed:
            self.progress.waiting(label, pushed)
        end_time = self._clock() + (timeout if timeout is not None else 0.0)
        replies: list[Message] = []
        try:
            while timeout is None or self._clock() < end_time:
                pulled = list(self._grid.pull_messages(message_ids))
                replies.extend(pulled)
                message_ids.difference_update({msg.metadata.reply_to_message_id for msg in pulled})
                if pushed:
                    self.progress.replied(pushed - len(message_ids), pushed)
                if not message_ids:
                    break
                self._sleep(self._interval)
        finally:
            if pushed:
                self.progress.ended(pushed - len(message_ids), pushed)
        return replies


def round_label(messages: list[Message], num_rounds: int) -> str:
    """`round R/N`: R from the messages' group id (Flower's legacy workflows set it) or their config's
    `server-round` (its Message-API strategies set that); with the message type when it is not training."""
    first = messages[0]
    server_round = first.metadata.group_id
    if not server_round and first.has_content():
        config = first.content.config_records.get("config")
        server_round = str(config.get("server-round", "")) if config is not None else ""
    label = f"round {server_round}/{num_rounds}" if server_round else "round"
    kind = first.metadata.message_type.split(".")[0]
    return label if kind == "train" else f"{label} ({kind})"


class ProgressLine:
    """`label: X of Y nodes replied` on the console: a live line on a terminal, else sparse plain lines.

    `describe(messages)` names the wait (default: `round R/N`); `live` chooses the live line (only
    where the console is a terminal: redraws must not reach a log).
    """

    def __init__(self, console: Console, num_rounds: int, *, live: bool,
                 describe: Callable[[list[Message]], str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.live = live and console.is_terminal
        self._describe = describe or (lambda messages: round_label(messages, num_rounds))
        self._clock = clock
        self._label = ""
        self._started = self._last_line = 0.0
        self._quarter = self._answered = 0
        self._live: Live | None = None

    def waiting(self, label: str, pushed: int) -> None:
        self._label = label
        self._started = self._last_line = self._clock()
        self._quarter = self._answered = 0
        if self.live:
            self._live = Live(Text(self.line(0, pushed)), console=self.console, transient=True, auto_refresh=False,
                              redirect_stdout=True, redirect_stderr=True)
            self._live.start(refresh=True)

    def describe(self, messages: list[Message]) -> str:
        return self._describe(messages)

    def replied(self, answered: int, pushed: int) -> None:
        now = self._clock()
        if self._live is not None:
            if answered != self._answered or now - self._last_line >= 1.0:  # new replies, or the seconds tick
                self._answered, self._last_line = answered, now
                self._live.update(Text(self.line(answered, pushed)), refresh=True)
            return
        quarter = answered * 4 // pushed
        since = now - self._last_line
        if (quarter > self._quarter and since >= PLAIN_LINE_GAP) or since >= quiet_gap(now - self._started):
            self._quarter, self._last_line = max(quarter, self._quarter), now
            self.console.print(self.line(answered, pushed), highlight=False)

    def ended(self, answered: int, pushed: int) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        if answered < pushed:  # the time-out ended the wait: say so once, whatever was shown
            self.console.print(f"{self.line(answered, pushed)} before the time-out", highlight=False)

    def line(self, answered: int, pushed: int) -> str:
        return f"{self._label}: {answered} of {pushed} nodes replied ({self._clock() - self._started:.1f} s)"


def quiet_gap(waited: float) -> float:
    """How long a plain line may be missing while nothing else is said: 10 s for the first minute of a wait,
    then a minute (a round waiting on a lost node for its hour-long time-out says so 60-odd times, not 360)."""
    return 10.0 if waited < 60.0 else 60.0
