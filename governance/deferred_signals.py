"""Hold SIGINT and SIGTERM back while a few steps must finish together.

Replacing the key-encryption key writes the keystore, commits the database, then writes
the keystore again. Ctrl-C between the commit and the last write would leave the shredded
scope's old KEK on disk; so the signals that arrive meanwhile are delivered after it.
(SIGKILL and power loss cannot be held back: the next writer to open the ledger finishes
the job, see `Ledger._reconcile_keystore`.)
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def signals_deferred() -> Iterator[list[int]]:
    """Run the block with SIGINT/SIGTERM recorded instead of handled; deliver the first one after.

    Yields the signals received so far, so a block can tell that one came (a move puts
    everything back before the signal is delivered).
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # only the main thread receives Python signal handlers; nothing to hold here
        return
    previous = {signum: signal.signal(signum, lambda signum, _frame: received.append(signum)) for signum in HELD}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received:
            signal.raise_signal(received[0])
