"""`fedgov monitor watch`: repeat the retraining check, and launch the retraining run a fired trigger calls for.

Each check is `fedgov monitor check`'s (governance/monitoring/checks.py), recorded as a
`monitor.trigger` entry whatever it decides. A decision to retrain launches the policy's
`[retrain]` run as a child `fedgov sim run` (or `fedgov run` on a deployment) with
`--retrain-trigger SEQ`, waits for it, and goes on checking. What stops a storm of runs lives
in the ledger, so it survives a restart of the watch: the cooldown counts from the last
retraining decision, and evidence a retraining was already decided on is not acted on again.

The child runs in its own session under this process's guard (fedgov/processes.py): on Ctrl-C
or SIGTERM it gets the same signal, so it closes its run as interrupted, and whatever is left
of it after a grace period is ended; `kill -9` of the watch sends the child SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from governance.cli.monitor import CheckFormat, CheckFormatOpt, PolicyOpt, RunOpt, app as monitor_app, show
from governance.cli.options import PassFileOpt, WorkspaceOpt
from governance.errors import UsageError

if TYPE_CHECKING:
    from governance.monitoring.policy import Policy, Retrain
    from governance.workspace import Workspace

__all__ = ["monitor_app"]

CHILD_GRACE_S = 60.0  # how long a signalled retraining run gets to close itself before it is ended
MAX_INTERVAL_S = 7 * 86400
MAX_CHECKS = 10**9
WATCH_LOCK = "monitor-watch.lock"  # in the workspace: flocked by the one watch running on it


# [retrain] key -> (the child's option, the run-config key it sets)
RETRAIN_OPTIONS = {"rounds": ("--rounds", "num-server-rounds"), "nodes": ("--nodes", "num-partitions"),
                   "dataset": ("--dataset", "dataset"), "strategy": ("--strategy", "strategy"),
                   "partition": ("--partition", "partition"), "seed": ("--seed", "seed"),
                   "local_epochs": ("--local-epochs", "local-epochs")}


def retrain_argv(retrain: "Retrain", seq: int, workspace: Path) -> list[str]:
    """The child command line that retrains as the policy's [retrain] says, linked to trigger entry `seq`."""
    command = ["sim", "run"] if retrain.kind == "simulation" else ["run"]
    argv = [sys.executable, "-P", "-m", "cli", *command, "--purpose", retrain.purpose, "--workspace", str(workspace),
            "--out", retrain.out.replace("{seq}", str(seq)), "--retrain-trigger", str(seq)]
    for key, value in retrain.options.items():
        argv += [RETRAIN_OPTIONS[key][0], str(value)]
    return argv


def check_retrain_settings(retrain: "Retrain") -> None:
    """The retraining run's settings, checked now: a policy that could never launch fails before the first check."""
    from fedgov.settings import RunSettings

    config = {RETRAIN_OPTIONS[k][1]: v for k, v in retrain.options.items()}
    try:
        RunSettings.from_run_config({**config, "purpose": retrain.purpose})
    except UsageError as err:
        raise UsageError(f"the policy's [retrain] cannot launch a run: {err}") from None


def launch(argv: list[str], env: dict[str, str], echo: Callable[[str], None]) -> int:
    """Run the retraining child to its end; on Ctrl-C or SIGTERM pass the signal on, then end what is left."""
    from fedgov.interrupts import Terminated, ignore_further
    from fedgov.processes import guarded, parent_death_signal

    with guarded(env) as started:
        child = subprocess.Popen(argv, env=env, start_new_session=True, preexec_fn=parent_death_signal())
        started.append(child)
        try:
            return child.wait()
        except KeyboardInterrupt as interrupt:
            ignore_further()
            child.send_signal(signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)
            try:
                child.wait(timeout=CHILD_GRACE_S)
            except subprocess.TimeoutExpired:
                echo(f"the retraining run did not end within {CHILD_GRACE_S:g} s of the signal; ending it")
            raise


@monitor_app.command("watch")
def watch(
    policy: PolicyOpt,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between checks.")],
    max_checks: Annotated[Optional[int], typer.Option("--max-checks", help="Stop after this many checks "
                                                      "(default: watch until Ctrl-C or SIGTERM).")] = None,
    run: RunOpt = None,
    fmt: CheckFormatOpt = CheckFormat.table,
    workspace: WorkspaceOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Check every --interval seconds; when a trigger fires and no cooldown holds, launch the retraining run."""
    from governance.keystore import passphrase_from
    from governance.monitoring.policy import load_policy
    from governance.names import check_name
    from governance.workspace import Workspace

    if not (0 < interval <= MAX_INTERVAL_S):
        raise UsageError(f"--interval must be a number of seconds in (0, {MAX_INTERVAL_S}], got {interval:g}")
    if max_checks is not None and not 1 <= max_checks <= MAX_CHECKS:
        raise UsageError(f"--max-checks must be a whole number from 1 to {MAX_CHECKS} (leave it out to watch until "
                         f"stopped), got {max_checks}")
    if run is not None:
        check_name(run, "--run")
    parsed = load_policy(policy)
    if parsed.retrain.kind == "simulation":
        check_retrain_settings(parsed.retrain)
    ws = Workspace.discover(workspace)
    passphrase = passphrase_from(passphrase_file, prompt=sys.stdin.isatty())
    env = dict(os.environ)
    if passphrase is not None:
        env["FEDGOV_PASSPHRASE"] = passphrase
    with watching(ws.path):
        _watch(parsed, ws, passphrase, env, interval, max_checks, run, fmt)


def _watch(parsed: "Policy", ws: "Workspace", passphrase: str | None, env: dict[str, str], interval: float, max_checks: int | None,
           run: str | None, fmt: CheckFormat) -> None:
    from governance.ledger import Ledger
    from governance.monitoring.checks import check_and_record
    from governance.monitoring.evidence import RETRAIN, NoEvidenceError

    failed = 0
    count = 0
    missing: NoEvidenceError | None = None
    while max_checks is None or count < max_checks:
        if count:
            time.sleep(interval)
        count += 1
        typer.echo(f"check {count}{'' if max_checks is None else f' of {max_checks}'}:")
        try:
            with Ledger.open(ws, passphrase) as ledger:
                outcome = check_and_record(ledger, parsed, command="watch", run_id=run)
        except NoEvidenceError as err:  # a watch may start before the first monitored round: it waits for one
            typer.echo(f"no decision yet: {err}")
            missing = err
            continue
        missing = None
        show(outcome, fmt)
        if outcome.decision.decision != RETRAIN:
            continue
        argv = retrain_argv(parsed.retrain, outcome.seq, ws.path)
        typer.echo(f"launching the retraining run (trigger seq {outcome.seq}): fedgov {' '.join(argv[4:])}")
        code = launch(argv, env, typer.echo)
        if code == 0:
            typer.echo(f"the retraining run of trigger seq {outcome.seq} completed")
        else:
            failed += 1
            typer.echo(f"the retraining run of trigger seq {outcome.seq} failed (exit {code}); see its output above "
                       "and `fedgov audit log --type run.finished`", err=True)
    if failed:
        from governance.errors import PolicyError

        raise PolicyError(f"{failed} retraining run(s) failed; each is recorded in the ledger")
    if missing is not None:  # the last check still found nothing to weigh
        raise missing


@contextmanager
def watching(workspace: Path) -> Iterator[None]:
    """One watch per workspace: two would both see the same evidence unanswered and retrain twice."""
    import fcntl
    import json

    path = workspace / WATCH_LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.pread(fd, 200, 0) or b"{}").get("pid", "?")
            except ValueError:
                holder = "?"
            raise UsageError(f"another `fedgov monitor watch` (pid {holder}) is watching {workspace}; stop it first, "
                             "or use `fedgov monitor check`") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid()}).encode(), 0)
        yield
    finally:
        os.close(fd)  # the kernel releases the lock whatever ends this process
