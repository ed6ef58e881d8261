"""Round progress (server/progress.py): the push and pull loop keeps Flower's semantics, and the console shows
how many of a round's nodes have replied, sparsely where it is not a terminal."""

from __future__ import annotations

import io

import pytest
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.superlink.grid import inmemory_grid
from flwr.superlink.grid.inmemory_grid import InMemoryGrid
from rich.console import Console

from server.grid_view import DelegatingGrid
from server.progress import HTTP_GRID_PULL_INTERVAL, ProgressGrid, ProgressLine, pull_interval, round_label


@pytest.fixture(autouse=True)
def task_identity(monkeypatch):
    """Flower stamps every new Message with the task's run and node (set as the ServerApp would have them)."""
    from flwr.common.constant import SUPERLINK_NODE_ID
    from flwr.supercore.task_identity import TaskIdentity

    for attribute, value in (("_run_id", 7), ("_task_id", 11), ("_node_id", SUPERLINK_NODE_ID)):
        monkeypatch.setattr(TaskIdentity, attribute, value)


class Clock:
    """Time that passes only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScriptedGrid:
    """Pushes get ids; the n-th pull returns the replies the script names for it (then nothing)."""

    pull_interval = 0.1

    def __init__(self, script: list[int]) -> None:
        self.script = list(script)
        self.pulls = 0
        self.pending: list[Message] = []

    def push_messages(self, messages):
        ids = []
        for i, message in enumerate(messages):
            message.metadata.__dict__["_message_id"] = f"m{i}"
            ids.append(f"m{i}")
        self.pending = list(messages)
        return ids

    def pull_messages(self, message_ids):
        self.pulls += 1
        count = self.script.pop(0) if self.script else 0
        wanted = [m for m in self.pending if m.metadata.message_id in set(message_ids)][:count]
        return [Message(RecordDict(), reply_to=m) for m in wanted]


class Recorded:
    """A ReplyProgress that notes every call."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def describe(self, messages):
        return round_label(messages, 5)

    def waiting(self, label, pushed):
        self.calls.append(("waiting", label, pushed))

    def replied(self, answered, pushed):
        self.calls.append(("replied", answered, pushed))

    def ended(self, answered, pushed):
        self.calls.append(("ended", answered, pushed))


def instructions(count: int, server_round: int = 2) -> list[Message]:
    return [Message(RecordDict({"config": ConfigRecord({"server-round": server_round})}), dst_node_id=10 + i,
                    message_type="train") for i in range(count)]


def ours(script: list[int], timeout: float | None, count: int = 4):
    clock, grid, progress = Clock(), ScriptedGrid(script), Recorded()
    replies = ProgressGrid(grid, progress, clock=clock.time, sleep=clock.sleep).send_and_receive(
        instructions(count), timeout=timeout)
    return grid.pulls, sorted(r.metadata.reply_to_message_id for r in replies), progress.calls


def flowers(script: list[int], timeout: float | None, monkeypatch, count: int = 4):
    """Flower 1.42's own InMemoryGrid.send_and_receive on the same scripted grid and clock."""
    clock, grid = Clock(), ScriptedGrid(script)
    monkeypatch.setattr(inmemory_grid.time, "time", clock.time)
    monkeypatch.setattr(inmemory_grid.time, "sleep", clock.sleep)
    replies = InMemoryGrid.send_and_receive(grid, instructions(count), timeout=timeout)
    return grid.pulls, sorted(r.metadata.reply_to_message_id for r in replies)


@pytest.mark.parametrize("script, timeout", [
    ([0, 1, 2, 1], None),        # all four reply over four pulls
    ([0, 1, 2, 1], 3600.0),      # the same under the strategy's round time-out
    ([1], 0.25),                 # three reply never: the time-out ends the wait after 3 pulls at 0.1 s
    ([4], 0.0),                  # timeout 0: Flower pulls nothing at all
    ([], 1.0),                   # nobody replies
])
def test_the_loop_pulls_and_returns_exactly_what_flowers_own_does(script, timeout, monkeypatch):
    pulls, replies, _ = ours(script, timeout)
    assert (pulls, replies) == flowers(script, timeout, monkeypatch)


def test_progress_counts_the_pushed_messages_that_have_a_reply():
    _, replies, calls = ours([0, 1, 2, 1], None)
    assert replies == ["m0", "m1", "m2", "m3"]
    assert calls == [("waiting", "round 2/5", 4), ("replied", 0, 4), ("replied", 1, 4), ("replied", 3, 4),
                     ("replied", 4, 4), ("ended", 4, 4)]


def test_a_time_out_ends_the_wait_with_the_count_that_replied():
    _, replies, calls = ours([1], 0.25)
    assert replies == ["m0"] and calls[-1] == ("ended", 1, 4)


def test_nothing_pushed_reports_nothing():
    assert ours([], None, count=0)[2] == []


def test_the_poll_interval_is_the_real_grids_under_any_view():
    grid = ScriptedGrid([])
    assert pull_interval(DelegatingGrid(DelegatingGrid(grid))) == 0.1
    assert pull_interval(DelegatingGrid(object())) == HTTP_GRID_PULL_INTERVAL  # HttpGrid: Flower sleeps 3 s


def test_the_round_comes_from_the_group_id_or_the_config():
    legacy = Message(RecordDict(), dst_node_id=1, message_type="train", group_id="3")
    assert round_label([legacy], 5) == "round 3/5"
    assert round_label(instructions(1, 4), 5) == "round 4/5"
    assert round_label([Message(RecordDict(), dst_node_id=1, message_type="evaluate", group_id="1")], 5) == \
        "round 1/5 (evaluate)"


def plain_lines(events: list[tuple[float, str, int]], pushed: int = 100) -> list[str]:
    """Drive a ProgressLine on a non-terminal console: (time, 'replied'|'ended', answered) events."""
    clock, out = Clock(), io.StringIO()
    line = ProgressLine(Console(file=out, force_terminal=False, width=200), 5, live=True, clock=clock.time)
    line.waiting("round 1/5", pushed)
    start = clock.now
    for at, kind, answered in events:
        clock.now = start + at
        getattr(line, kind)(answered, pushed)
    return out.getvalue().splitlines()


def test_plain_lines_come_at_quarters_at_least_a_second_apart():
    events = [(0.2, "replied", 30), (0.5, "replied", 40), (1.1, "replied", 41), (1.5, "replied", 60),
              (2.6, "replied", 61), (2.7, "replied", 99), (3.0, "replied", 100), (3.0, "ended", 100)]
    assert plain_lines(events) == ["round 1/5: 41 of 100 nodes replied (1.1 s)",  # 25 % passed; the first after 1 s
                                   "round 1/5: 61 of 100 nodes replied (2.6 s)",  # 50 %; 60 came only 0.4 s later
                                   ]


def test_a_fast_round_adds_no_line():
    assert plain_lines([(0.1, "replied", 0), (0.2, "replied", 50), (0.3, "replied", 100), (0.3, "ended", 100)]) == []


def test_a_long_silence_is_broken_every_10_s_then_every_minute():
    polls = [(t / 10, "replied", 0) for t in range(1, 1300)]  # 130 s of pulls every 0.1 s, no reply
    assert plain_lines(polls) == [f"round 1/5: 0 of 100 nodes replied ({t:.1f} s)" for t in (10, 20, 30, 40, 50, 110)]


def test_a_slow_round_of_two_nodes_shows_the_last_reply_and_a_time_out_says_so():
    assert plain_lines([(0.5, "replied", 1), (4.0, "replied", 2), (4.0, "ended", 2)], pushed=2) == \
        ["round 1/5: 2 of 2 nodes replied (4.0 s)"]
    assert plain_lines([(2.0, "replied", 1), (5.0, "ended", 1)], pushed=2) == \
        ["round 1/5: 1 of 2 nodes replied (2.0 s)", "round 1/5: 1 of 2 nodes replied (5.0 s) before the time-out"]


def test_on_a_terminal_the_line_is_live_and_cleared_when_the_wait_ends():
    clock, out = Clock(), io.StringIO()
    line = ProgressLine(Console(file=out, force_terminal=True, width=200), 5, live=True, clock=clock.time)
    line.waiting("round 1/5", 100)
    for answered in (0, 10, 37, 37):
        clock.sleep(0.5)
        line.replied(answered, 100)
    assert "round 1/5: 37 of 100 nodes replied (1.5 s)" in out.getvalue()
    assert "(2.0 s)" not in out.getvalue()  # unchanged, and less than a second since the last redraw
    clock.sleep(1.0)
    line.replied(37, 100)
    assert "round 1/5: 37 of 100 nodes replied (3.0 s)" in out.getvalue()  # the seconds tick while nothing comes
    line.ended(100, 100)
    assert out.getvalue().endswith("\x1b[2K") or "\x1b[2K" in out.getvalue().splitlines()[-1]  # erased: transient
