"""The `fedgov` entry point: import the command tree, then run it; Ctrl-C or SIGTERM at any moment is one line.

Importing the command tree takes a moment (typer, rich, the governance CLI groups), and a
Ctrl-C that lands during it must not print a traceback either; so the import happens here,
inside the guard, and everything else lives in `cli/commands.py`.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Entry point of the `fedgov` console script and of `python -m cli`."""
    from fedgov import interrupts

    interrupts.install()
    try:
        from cli.commands import run
    except KeyboardInterrupt as interrupt:
        sys.stderr.write(f"error: interrupted by {interrupts.signal_name(interrupt)}\n")
        sys.exit(interrupts.exit_code(interrupt))
    run()
