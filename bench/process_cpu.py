"""CPU a command costs, summed over every process on the machine while it runs, by kind of process.

`python bench/process_cpu.py [--interval S] [--top N] -- COMMAND...` runs COMMAND and samples /proc every
`--interval` seconds (default 0.05): each process's user + system CPU from /proc/PID/stat, its first
sample's CPU subtracted when it was already running. A process is named by its command line (a Ray
worker by its title, `ray::ClientAppActor`; fedgov by its subcommand; Python by its `-m` module).
Prints the total, then the kinds of process, most CPU first, with how many of each.

Why sampling: Ray's agents and workers are not the command's children once they daemonise, so the
command's own rusage misses them. A process that lives less than one interval is missed, and each one's
last interval of CPU before it exits is lost: the figures are a floor, good for comparing two runs.
Linux only (docs/benchmarks.md, "Sixth pass").
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def kind(cmdline: str, name: str) -> str:
    """A short name for what a process is, from its command line (or its kernel name when it has none)."""
    if cmdline.startswith("ray::"):
        return cmdline.split()[0]
    fedgov = re.search(r"bin/fedgov((?: [a-z][a-z-]*){1,2})", cmdline)
    if fedgov:
        return "fedgov" + fedgov.group(1)
    module = re.search(r" -m (\S+)", cmdline)
    if module:
        return f"python -m {module.group(1)}"
    for word in ("gcs_server", "raylet", "dashboard", "log_monitor", "monitor.py", "flower-superlink",
                 "flower-supernode", "flwr-serverapp", "flwr-clientapp", "flwr-superexec"):
        if word in cmdline:
            return word
    return cmdline.split()[0].rsplit("/", 1)[-1] if cmdline else f"[{name}]"


def sample(seen: dict[tuple[int, int], tuple[float, str]], baseline: dict[tuple[int, int], float] | None) -> None:
    """Read every process's CPU so far; with `baseline`, remember it as what was spent before the command."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat.rsplit(")", 1)[1].split()
        key = (int(entry.name), int(fields[19]))  # pid and start time: a reused pid is another process
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        previous = seen.get(key)
        seen[key] = (cpu, kind(cmdline, name) if cmdline or previous is None else previous[1])
        if baseline is not None:
            baseline[key] = cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --")
    seen: dict[tuple[int, int], tuple[float, str]] = {}
    before: dict[tuple[int, int], float] = {}
    sample(seen, before)
    started = time.monotonic()
    process = subprocess.Popen(command)
    try:
        while process.poll() is None:
            sample(seen, None)
            time.sleep(args.interval)
    except KeyboardInterrupt:
        process.wait()
    wall = time.monotonic() - started
    sample(seen, None)
    mine = os.getpid()
    spent, count = Counter(), Counter()
    for (pid, _start), (cpu, what) in seen.items():
        used = cpu - before.get((pid, _start), 0.0)
        if used > 0 and pid != mine:
            spent[what] += used
            count[what] += 1
    print(f"command exit {process.returncode}; wall {wall:.2f} s; CPU {sum(spent.values()):.2f} s over "
          f"{sum(count.values())} processes (everything on this machine while it ran)")
    for what, used in spent.most_common(args.top):
        print(f"{used:9.2f} s  {count[what]:5d}  {what}")
    return process.returncode


if __name__ == "__main__":
    sys.exit(main())
