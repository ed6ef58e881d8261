"""SIGTERM is handled like Ctrl-C: an exception that unwinds the command, so it can clean up.

`timeout`, systemd and Docker stop a process with SIGTERM. Python's default for it is to
die on the spot, which would leave a run open in the ledger and its engine running; so
`fedgov` turns it into `Terminated`, a `KeyboardInterrupt`, and every path that already
ends a run cleanly on Ctrl-C does the same on SIGTERM. The exit code tells them apart.
"""

from __future__ import annotations

import signal


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; raised in the main thread like KeyboardInterrupt is for SIGINT."""


_received: list[int] = []


def _raise_terminated(_signum: int, _frame: object) -> None:
    _received.append(signal.SIGTERM)
    raise Terminated()


def last_was_sigterm() -> bool:
    """For an interrupt that reached us re-wrapped (click turns one during a prompt into Abort)."""
    return bool(_received)


def install() -> None:
    """Make SIGTERM raise `Terminated` in the main thread (SIGINT keeps raising KeyboardInterrupt)."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def signal_name(interrupt: BaseException) -> str:
    return "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"


def exit_code(interrupt: BaseException) -> int:
    """128 + the signal's number, as shells report a process a signal ended: 143 or 130."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)


def ignore_further() -> None:
    """While the command winds down after a signal, a second one must not cut the cleanup short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
