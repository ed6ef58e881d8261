"""The moment the simulated coordinator has finished, handed from the ServerApp to the engine.

When `serve` returns, the run is over: its ledger entries are committed and the ledger
closed, rounds.json and the model written. When the coordinator raises a FedgovError (one of
serve's, which it records in the ledger first, or the enrollment gate's time-out), all that is
left is to report it. Flower's own teardown after that costs about 3.5 s on two cores (its worker
threads poll their queue once a second, `ray.shutdown()` gives each of Ray's processes a
second to go on SIGTERM, then the interpreter's own teardown), and plain Flower pays it too.
The engine registers a finisher here that ends the process at once
(`simulations.engine.end_once_served`); the ServerApp calls it in its own thread, before Flower
learns that the ServerApp returned, so no teardown of Flower's runs beside it.

A module of its own because the engine runs as `__main__`: a finisher kept in `simulations.engine`
would be registered in a second copy of that module, not the one the ServerApp would call.
"""

from __future__ import annotations

from typing import Callable, NoReturn

from governance.errors import FedgovError

Finisher = Callable[[FedgovError | None], NoReturn]
_finishers: list[Finisher] = []


def when_coordinator_ends(finish: Finisher) -> None:
    """The engine's: `finish(failure)` is called once the coordinator has ended, and ends the process."""
    _finishers[:] = [finish]


def coordinator_ended(failure: FedgovError | None = None) -> None:
    """Called by the ServerApp once `serve` has returned (None) or raised `failure`. With the engine's
    finisher registered this does not return; without one (the app imported elsewhere) it does nothing."""
    for finish in _finishers:
        finish(failure)
