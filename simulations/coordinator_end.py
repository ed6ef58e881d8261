"""The moment the simulated coordinator has finished, passed from the ServerApp to the engine.

When `serve` returns or raises a FedgovError, the run is over: its ledger entries are
committed and the ledger closed, rounds.json and the model are written, or the failure is
recorded. Flower's own teardown after that costs about 3.5 s on two cores (its worker
threads poll their queue once a second, `ray.shutdown()` gives each of Ray's processes a
second to go on SIGTERM, then the interpreter's own teardown), and plain Flower pays it too.
The engine waits on this instead and ends at once (`simulations.engine.end_once_served`).

A module of its own because the engine runs as `__main__`: an event kept in `simulations.engine`
would be a second copy of that module, not the one the engine waits on.
"""

from __future__ import annotations

import threading

from governance.errors import FedgovError

_ended = threading.Event()
_failure: list[FedgovError] = []


def coordinator_ended(failure: FedgovError | None = None) -> None:
    """Called by the ServerApp once `serve` has returned (None) or raised `failure`."""
    if failure is not None:
        _failure.append(failure)
    _ended.set()


def wait_for_coordinator() -> FedgovError | None:
    """Block until the coordinator has ended; its failure, or None when it completed."""
    _ended.wait()
    return _failure[0] if _failure else None
