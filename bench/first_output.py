"""Time to the first sign of life of a fedgov command, and its round progress as it comes (issue 13, item 5).

Runs the command (default: `fedgov sim run --nodes 100 --rounds 2` in a fresh workspace) and
stamps every chunk of its stdout from the moment it was started: the first byte, each line,
and each round-progress update (`round 1/2: 37 of 100 nodes replied`). With `--pty` the command
writes to a pseudo-terminal, as in a user's shell, and the live progress line's redraws are
counted; without, it writes to a pipe, as under CI or a log, where progress comes as sparse
plain lines. Usage:

    python bench/first_output.py [--pty] [--target 2.0] [--json] [-- COMMAND ...]

Exits 1 when the first byte came later than `--target` seconds (or never), else with the
command's own exit status.
"""

from __future__ import annotations

import argparse
import bisect
import codecs
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROGRESS = re.compile(r"^(?P<label>round \d+/\d+[^:]*): (?P<answered>\d+) of (?P<pushed>\d+) nodes replied")


@dataclass
class Progress:
    """One progress update as shown: when, for what, how many of how many."""

    at: float
    label: str
    answered: int
    pushed: int


@dataclass
class Timeline:
    """What the command showed, and when (seconds since it was started)."""

    first_byte: float | None = None
    lines: list[tuple[float, str]] = field(default_factory=list)
    progress: list[Progress] = field(default_factory=list)
    wall: float = 0.0
    returncode: int | None = None


SEPARATOR = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|[\r\n]")


def screen_pieces(text: str) -> list[tuple[int, str]]:
    """The pieces a terminal would show of raw output, each with its offset in `text`: split at newlines,
    carriage returns and escape sequences (a live line is redrawn after `\\r` or a cursor move), blanks dropped."""
    pieces, begin = [], 0
    for match in [*SEPARATOR.finditer(text), None]:
        stop = match.start() if match else len(text)
        piece = text[begin:stop]
        if piece.strip():
            pieces.append((begin + len(piece) - len(piece.lstrip()), piece.strip()))
        begin = match.end() if match else stop
    return pieces


def read_timeline(chunks: list[tuple[float, bytes]]) -> Timeline:
    """Lines and progress updates from time-stamped raw output. A piece is stamped with the time its first
    character arrived (a live line is written without a newline); a progress update redrawn unchanged counts once."""
    timeline = Timeline(first_byte=chunks[0][0] if chunks else None)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text, starts, times = "", [], []
    for at, data in chunks:
        starts.append(len(text))
        times.append(at)
        text += decoder.decode(data)
    text += decoder.decode(b"", final=True)
    for offset, piece in screen_pieces(text):
        timeline.lines.append((times[bisect.bisect_right(starts, offset) - 1], piece))
    for at, line in timeline.lines:
        match = PROGRESS.match(line)
        if match:
            update = Progress(at, match["label"], int(match["answered"]), int(match["pushed"]))
            last = timeline.progress[-1] if timeline.progress else None
            if last is None or (last.label, last.answered) != (update.label, update.answered):
                timeline.progress.append(update)
    return timeline


def run(command: list[str], env: dict[str, str], pty: bool) -> Timeline:
    """Run `command`, stamping each chunk of its output from the moment before it was started."""
    if pty:
        import pty as pty_module

        reader, writer = pty_module.openpty()
    else:
        reader, writer = os.pipe()
    start = time.monotonic()
    proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=writer, stderr=subprocess.DEVNULL)
    os.close(writer)
    chunks: list[tuple[float, bytes]] = []
    while True:
        ready, _, _ = select.select([reader], [], [], 1.0)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            data = os.read(reader, 65536)
        except OSError:  # a pty's reader fails with EIO once the command is gone
            break
        if not data:
            break
        chunks.append((time.monotonic() - start, data))
    os.close(reader)
    timeline = read_timeline(chunks)
    timeline.returncode = proc.wait()
    timeline.wall = time.monotonic() - start
    return timeline


def default_command(workspace: Path, nodes: int, rounds: int) -> list[str]:
    fedgov = Path(sys.executable).parent / "fedgov"
    return [str(fedgov), "sim", "run", "--nodes", str(nodes), "--rounds", str(rounds),
            "--out", str(workspace / "run")]


def report(timeline: Timeline, target: float) -> str:
    first = "never" if timeline.first_byte is None else f"{timeline.first_byte:.2f} s"
    met = timeline.first_byte is not None and timeline.first_byte <= target
    out = [f"first byte on stdout: {first} (target <= {target:g} s: {'met' if met else 'MISSED'})",
           f"wall: {timeline.wall:.1f} s, exit {timeline.returncode}", "", "first lines:"]
    out += [f"  {at:7.2f} s  {line[:110]}" for at, line in timeline.lines[:6]]
    by_label: dict[str, list[Progress]] = {}
    for update in timeline.progress:
        by_label.setdefault(update.label, []).append(update)
    out += ["", f"progress updates: {len(timeline.progress)}"]
    for label, updates in by_label.items():
        shown = ", ".join(f"{u.answered}/{u.pushed} at {u.at:.1f} s" for u in updates[:8])
        out.append(f"  {label}: {len(updates)} ({shown}{', …' if len(updates) > 8 else ''})")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pty", action="store_true", help="write to a pseudo-terminal (live progress line)")
    parser.add_argument("--target", type=float, default=2.0, help="seconds allowed to the first byte")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print the timeline as JSON instead")
    parser.add_argument("command", nargs="*", help="the command to run instead of `fedgov sim run` (after --)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fedgov-first-output-"))
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
           "RAY_USAGE_STATS_ENABLED": "0", "FEDGOV_PASSPHRASE": os.environ.get("FEDGOV_PASSPHRASE", "bench-passphrase")}
    if not args.command:  # the default run gets a fresh workspace; a command of one's own keeps its environment's
        env["FEDGOV_HOME"] = str(tmp / "workspace")
    try:
        timeline = run(args.command or default_command(tmp, args.nodes, args.rounds), env, args.pty)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(asdict(timeline), indent=1) if args.json else report(timeline, args.target))
    if timeline.first_byte is None or timeline.first_byte > args.target:
        return 1
    return timeline.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
