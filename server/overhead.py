"""Where governance spends its time, per round: the benchmark's and the run report's breakdown."""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator


class Overhead:
    """Seconds per round and per governance step, accumulated by the steps themselves."""

    def __init__(self) -> None:
        self._seconds: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    @contextmanager
    def timed(self, server_round: int, what: str) -> Iterator[None]:
        """Add the time the block takes to `what` of `server_round`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._seconds[server_round][what] += time.perf_counter() - start

    def pop(self, server_round: int) -> dict[str, float]:
        """The round's breakdown, once: the report takes it when the round closes."""
        return dict(self._seconds.pop(server_round, {}))
