"""Launch one simulated federation from the CLI and collect its run directory."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fedgov.coordinator_keys import hand_over, split_secrets
from fedgov.interrupts import exit_code, signal_name
from fedgov.settings import RunSettings, parse_retrain_trigger
from governance.errors import FedgovError, PolicyError, UsageError
from governance.deferred_signals import signals_deferred
from governance.open_runs import (CLOSED, CRASHED, INTERRUPTED, OPEN, RUNS_DIR, SCRATCH_PREFIX, UNSTARTED, RunHold,
                                  close_run, hold_run, run_state)
from governance.workspace import Workspace
from fedgov.processes import PARENT_VARIABLE, TAG_VARIABLE, Stopped, run_guarded
from simulations.ray_watch import OwnRaylet


@dataclass(frozen=True)
class Resources:
    """Flower client resources per virtual node, and an optional Ray cluster."""

    cpus_per_node: float = 1.0
    gpus_per_node: float = 0.0
    ray_address: str | None = None

    def check(self) -> None:
        """The numbers, and that the cluster at --ray-address answers: cheap, before the run's first line."""
        if not 0 < self.cpus_per_node <= 1024:
            raise UsageError(f"--cpus-per-node must be a number in (0, 1024], got {self.cpus_per_node}")
        if not 0 <= self.gpus_per_node <= 64:
            raise UsageError(f"--gpus-per-node must be a number in [0, 64], got {self.gpus_per_node}")
        if self.ray_address:
            check_reachable(self.ray_address)

    def check_gpu(self) -> None:
        """A GPU asked for must be visible here, or come from the cluster at --ray-address (imports torch: slow)."""
        if self.gpus_per_node > 0 and not self.ray_address:
            import torch

            if not torch.cuda.is_available():
                raise UsageError(
                    f"--gpus-per-node {self.gpus_per_node:g} asks for a GPU but none is visible; "
                    "use --gpus-per-node 0, or --ray-address of a Ray cluster with GPUs"
                )


def check_reachable(address: str, timeout: float = 2.0) -> None:
    """`--ray-address` must be HOST:PORT of something that answers, before anything is written."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--ray-address {address!r} is not HOST:PORT (e.g. 127.0.0.1:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise UsageError(f"no Ray cluster answers at --ray-address {address} ({err.strerror or err} within "
                         f"{timeout:g} s): start it with `ray start --head --port {port}`, or leave the option out")


def flower_environment(workspace: Path, own_cluster: bool = True) -> dict[str, str]:
    """Environment for Flower: no telemetry, no update check, its home in the workspace.

    On a Ray cluster of the run's own, a Ray process that lost the cluster's GCS gives up
    after 10 s instead of Ray's 60: after `kill -9` of fedgov, Ray's agents would otherwise
    linger a minute.
    """
    env = dict(os.environ)
    if own_cluster:
        env.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", "10")
    env.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    env.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    env.setdefault("FLWR_HOME", str(workspace / "flwr-home"))
    return env


def check_out_dir(out: Path) -> None:
    """Fail in one line, before anything is written, when --out cannot become a directory."""
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"cannot write to --out {out}: {probe} is not a directory; choose a writable directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to --out {out}: {probe} is not writable; choose a writable directory")


@dataclass(frozen=True)
class Governance:
    """Where the run is recorded, and the consent rehearsal for the simulated nodes."""

    workspace: Path | None = None
    grant_consent: bool = True
    no_consent: tuple[str, ...] = ()


def run_simulation(settings: RunSettings, resources: Resources, out: Path, verbose: bool = False,
                   governance: Governance = Governance()) -> dict[str, Any]:
    """Run the federation in a guarded child process; return the parsed `rounds.json`.

    The simulated nodes are enrolled (keys, registry, consent) by this process while the
    child imports Flower and starts Ray; the ServerApp waits at the enrollment gate before it
    touches the ledger. If enrollment fails, the child is ended and nothing of the run is
    written. This process chooses the run id and holds the run's lock (shared with the
    engine) for the run's whole life; if the run cannot close itself (a signal here, the
    engine or its Ray cluster dying), it is closed here once every process of it has ended.
    """
    settings.check()
    resources.check()
    check_out_dir(out)
    run_id = str(secrets.randbelow(2**63 - 1) + 1)  # Flower's run ids are 64-bit; never 0
    # The first sign of life, before anything slow: torch's GPU check, the ledger's stack, the workspace's key
    # derivation, Flower, Ray.
    print(f"run {run_id}: preparing {settings.training.num_partitions} simulated nodes x "
          f"{settings.training.num_server_rounds} rounds: enrolling the nodes while Flower's Simulation Engine "
          "starts…", flush=True)
    resources.check_gpu()
    workspace = locate_workspace(governance.workspace)
    if parse_retrain_trigger(settings.governance.retrain_trigger):
        workspace = open_workspace(governance.workspace)
        check_retrain_trigger(settings, workspace)
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))  # short: Ray's socket paths under it must fit 107 bytes
    try:
        hold = hold_run(workspace.path, run_id, scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    try:
        return _run_held(settings, resources, out, verbose, governance, workspace.path, run_id, scratch, hold)
    finally:
        with signals_deferred():  # the lock file must not be lost half-way
            created = Workspace(workspace.path).exists  # else its creation failed: no run of it can be open
            hold.release(closed=not created or _settled(workspace.path, run_id))
            if not created:
                _remove_unmade(workspace.path)
            _remove(scratch)


def locate_workspace(explicit: Path | None) -> Workspace:
    """The workspace every command finds, or where one will be made (`open_workspace`); without the
    passphrase to make it, one clear line, before anything starts.

    A new workspace is made while the engine starts (enrollment opens it): making it first would
    delay the engine by the ledger's imports and the key derivation, about half a second.
    """
    from governance.keystore import ENV_PASSPHRASE

    ws = Workspace.locate(explicit)
    if not ws.exists and not os.environ.get(ENV_PASSPHRASE):
        raise UsageError(f"no fedgov workspace at {ws.path}: run `fedgov audit init`, "
                         f"or set {ENV_PASSPHRASE} to create one")
    return ws


def open_workspace(explicit: Path | None) -> Workspace:
    """The workspace every command finds; created on first use when a passphrase is set."""
    from governance.keystore import ENV_PASSPHRASE
    from governance.ledger import create_workspace

    ws = locate_workspace(explicit)
    return ws if ws.exists else create_workspace(ws.path, os.environ[ENV_PASSPHRASE])


def _remove_unmade(path: Path) -> None:
    """A workspace whose creation failed keeps nothing of this run: its empty runs directory goes, and the
    directory itself when nothing else is in it (an empty one the run made, say)."""
    for directory in (path / RUNS_DIR, path):
        with suppress(OSError):  # not empty, or not there: left as it is
            directory.rmdir()


def check_retrain_trigger(settings: RunSettings, workspace: Any) -> None:
    """A retraining run must name a recorded monitor.trigger entry: refused here, before anything starts."""
    from governance.monitoring.link import check_before_run

    seq = parse_retrain_trigger(settings.governance.retrain_trigger)
    if seq:
        check_before_run(workspace, seq)


def _remove(scratch: Path, tries: int = 20) -> None:
    """Remove the scratch directory; a Ray process that was still dying may add a log file meanwhile."""
    for _ in range(tries):
        shutil.rmtree(scratch, ignore_errors=True)
        if not scratch.exists():
            return
        time.sleep(0.1)


def _run_held(settings: RunSettings, resources: Resources, out: Path, verbose: bool, governance: Governance,
              workspace: Path, run_id: str, scratch: Path, hold: RunHold) -> dict[str, Any]:
    gate = scratch / "enrolled"
    settings = settings.override({"out-dir": str(out.resolve()), "workspace": str(workspace),
                                  "sim-root": str(workspace / "sim-nodes"), "enrollment-gate": str(gate)})
    request = {"num_nodes": settings.training.num_partitions, "run_config": settings.to_run_config(), "run_id": int(run_id),
               **asdict(resources), "verbose": verbose, "ray_temp_dir": str(scratch / "ray")}
    request_path = scratch / "request.json"
    request_path.write_text(json.dumps(request, indent=2))
    env = flower_environment(workspace, own_cluster=not resources.ray_address)
    env[PARENT_VARIABLE] = str(os.getpid())
    env[TAG_VARIABLE] = f"run-{run_id}"  # every process of the run inherits it: clean-up finds them all

    nodes = settings.training.num_partitions

    def enroll() -> None:
        from simulations.enroll import enroll_simulated_nodes

        started = time.monotonic()
        ws = open_workspace(workspace)  # made here when new, while the engine starts
        enroll_simulated_nodes(settings, ws, governance.grant_consent, governance.no_consent)
        print(f"run {run_id}: {nodes} simulated nodes enrolled in {ws.path} ({time.monotonic() - started:.1f} s)",
              flush=True)
        Path(env["FLWR_HOME"]).mkdir(parents=True, exist_ok=True)
        gate.write_text("enrolled")

    def close(status: str, reason: str) -> bool:
        with signals_deferred():
            return _close_left_open(workspace, run_id, status, reason)

    child_env, handed = split_secrets(env)
    watch = None if resources.ray_address else OwnRaylet(lambda: _still_open(workspace, run_id))
    try:
        # -P: nothing from the current directory is imported ahead of fedgov's own modules. The
        # engine keeps a copy of the run's lock: the run counts as alive while either process is.
        code = run_guarded([sys.executable, "-P", "-m", "simulations.engine", str(request_path)],
                           env=child_env, meanwhile=enroll, watch=watch,
                           pass_fds=(hand_over(handed, child_env), os.dup(hold.fd)))
    except Stopped as stopped:  # the run's own Ray cluster died under it; everything of it has ended
        where = f"; run {run_id} recorded as crashed" if close(CRASHED, str(stopped)) else ""
        raise PolicyError(f"{stopped}{where}") from None
    except KeyboardInterrupt as interrupt:  # Ctrl-C or SIGTERM; every process of the run has ended
        if _close_left_open(workspace, run_id, INTERRUPTED, f"{signal_name(interrupt)} to fedgov sim run"):
            where = f"; run {run_id} recorded as interrupted"
        elif _state(workspace, run_id) == CLOSED:
            where = (f" after run {run_id} had closed itself; its summary was not printed (see `fedgov audit log "
                     f"--run {run_id}` and {out})")
        else:
            where = ""
        raise RunInterrupted(f"interrupted by {signal_name(interrupt)}{where}", exit_code(interrupt)) from None
    if code != 0:
        failure = _failure(code, scratch / "failure.json")
        if close(CRASHED, str(failure)):
            failure.args = (f"{failure}; run {run_id} recorded as crashed",)
        raise failure
    rounds = out / "rounds.json"
    if not rounds.exists():
        raise PolicyError(f"the simulation ended without writing {rounds}")
    shutil.copy(request_path, out / "request.json")
    return json.loads(rounds.read_text())


class RunInterrupted(FedgovError):
    """A signal ended the run; exit 130 (SIGINT) or 143 (SIGTERM), as a shell would report it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code


def _state(workspace: Path, run_id: str) -> str | None:
    """The run's state in the ledger (read-only, no secret; see open_runs.run_state); None if unreadable."""
    from governance.ledger import Ledger
    from governance.workspace import Workspace

    try:
        with Ledger.open_readonly(Workspace.discover(workspace)) as ledger:
            return run_state(ledger, run_id)
    except Exception:  # noqa: BLE001 - unreadable now: the callers decide on the safe side
        return None


def _settled(workspace: Path, run_id: str) -> bool:
    """Closed or never started; when unsure, not (the lock file stays for the next writer)."""
    return _state(workspace, run_id) in (UNSTARTED, CLOSED)


def _still_open(workspace: Path, run_id: str) -> bool:
    """Started and not finished; when unsure, not (a run is never ended on a guess)."""
    return _state(workspace, run_id) == OPEN


def _close_left_open(workspace: Path | None, run_id: str, status: str, reason: str) -> bool:
    """Close the run if nothing of it could: after a signal, or when the engine died.

    The run's processes have all ended and this process holds its lock, so nothing else
    writes to the run meanwhile. A ledger that cannot be opened now leaves the run to the
    next writer, which closes it as abandoned.
    """
    from governance.ledger import Ledger
    from governance.workspace import Workspace

    try:
        ws = Workspace.discover(workspace)
        with Ledger.open(ws) as ledger:
            return close_run(ledger, run_id, status, reason)
    except Exception as err:  # noqa: BLE001 - the ledger's own errors included; the next writer settles it
        print(f"warning: run {run_id} could not be closed as {status} ({err}); the next command that writes "
              "to the ledger closes it as abandoned", file=sys.stderr, flush=True)
        return False


def _failure(code: int, failure_path: Path) -> FedgovError:
    """The child's own one-line reason where it left one, else its exit code."""
    try:
        failure = json.loads(failure_path.read_text())
        error, exit_code_ = failure["error"], failure["exit_code"]
        if isinstance(error, str) and error:
            return UsageError(error) if exit_code_ == 2 else PolicyError(error)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return PolicyError(f"the simulation engine was killed by {name}; see the output above")
    return PolicyError(f"the simulation crashed with exit code {code}; see the output above")
