"""SIGTERM is handled like Ctrl-C: an exception that unwinds the command, so it can clean up.

`timeout`, systemd and Docker stop a process with SIGTERM. Python's default for it is to
die on the spot, which would leave a run open in the ledger and its engine running; so
`fedgov` turns it into `Terminated`, a `KeyboardInterrupt`, and every path that already
ends a run cleanly on Ctrl-C does the same on SIGTERM. The exit code tells them apart. The
first signal decides: a SIGINT that follows a SIGTERM while the command winds down changes
neither the exit code nor what is recorded.
"""

from __future__ import annotations

import signal


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; raised in the main thread like KeyboardInterrupt is for SIGINT."""


_received: list[int] = []


def _interrupt(signum: int, _frame: object) -> None:
    """The first SIGINT or SIGTERM decides how the command ends; later ones find it winding down."""
    if _received:
        return
    _received.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def last_was_sigterm() -> bool:
    """For an interrupt that reached us re-wrapped (click turns one during a prompt into Abort)."""
    return _received[:1] == [signal.SIGTERM]


def install() -> None:
    """SIGTERM raises `Terminated`, SIGINT `KeyboardInterrupt`, in the main thread; only the first one counts."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)


def signal_name(interrupt: BaseException) -> str:
    return "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"


def exit_code(interrupt: BaseException) -> int:
    """128 + the signal's number, as shells report a process a signal ended: 143 or 130."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)


def ignore_further() -> None:
    """While the command winds down after a signal, a second one must not cut the cleanup short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
