"""The simulation child process: one Flower Simulation Engine run, then exit.

`fedgov sim run` starts this module in its own process group, so that when the run ends,
fails or is interrupted the parent can end every process it left (Ray included).

This calls Flower's `_run_simulation` exactly as Flower's own `flwr-simulation` does
(run config fused from `[tool.flwr.app.config]` with the overrides). The components are
the harness's simulated apps (`simulations/apps.py`, `simulations/client_app.py`), not the deployed ones of pyproject.toml. The public `run_simulation` is deprecated in 1.42 and takes no run
config; `flwr run` would need a detached SuperLink. flwr is pinned to 1.42.0 for this.
Ray is started here, with Flower's own arguments, before `_run_simulation` rather than inside
it, so that its start-up overlaps the imports of both apps (`start_ray_while_importing`).
Once the coordinator has finished, the engine ends at once rather than through Flower's
teardown (`end_once_served`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, NoReturn

from governance.errors import FedgovError
from governance.private_files import write_atomic
from fedgov.processes import descendants, die_with_parent, signal_all
from simulations.ray_watch import RayWatch

APP_DIR = Path(__file__).resolve().parent.parent
SERVER_APP, CLIENT_APP = "simulations.apps:server_app", "simulations.client_app:client_app"


def backend_config(cpus_per_node: float, gpus_per_node: float, ray_address: str | None,
                   ray_temp_dir: str | None = None) -> dict[str, Any]:
    """Flower's Ray backend config: client resources, and the cluster to use.

    With `ray_address`, that cluster. Without, always a new local one (`address="local"`),
    in its own temp dir: never whatever cluster `/tmp/ray/ray_current_cluster` names (another
    user's, say), and no shared `/tmp/ray` session files. A cluster of its own prestarts no
    workers: Ray would start one idle worker per CPU when the engine connects, which Flower's
    actors never use (each actor gets a worker of its own) and Ray ends a second later: a
    Python start-up each (~0.3 CPU-s on two cores), in the seconds before round 1.
    """
    init_args: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": True}
    if ray_address:
        init_args["address"] = ray_address
    else:
        init_args["address"] = "local"
        init_args["_system_config"] = {"prestart_worker_first_driver": False}
        if ray_temp_dir:
            init_args["_temp_dir"] = ray_temp_dir
    return {
        "client_resources": {"num_cpus": cpus_per_node, "num_gpus": gpus_per_node},
        "init_args": init_args,
    }


def ray_starting_line(request: dict[str, Any]) -> str:
    """What the engine is about to do, said while Ray starts (a few seconds with no other output)."""
    nodes, cpus, gpus = int(request["num_nodes"]), float(request["cpus_per_node"]), float(request["gpus_per_node"])
    per_node = f"{cpus:g} CPU" + (f" and {gpus:g} GPU" if gpus else "") + " per node"
    if request.get("ray_address"):
        return f"attaching to the Ray cluster at {request['ray_address']} for {nodes} virtual nodes ({per_node})…"
    machine = os.cpu_count() or 1
    at_once = max(1, min(nodes, int(machine // cpus)))  # Flower's actor pool: CPUs / CPUs per node (GPUs may limit it)
    return (f"starting Ray on this machine's {machine} CPUs for {nodes} virtual nodes ({per_node}: up to {at_once} "
            "train at a time)…")


def run_engine(request: dict[str, Any], end: Ending) -> None:
    """Run one simulation described by `request` (see `simulations.runner`)."""
    from flwr.app import Context, RecordDict
    from flwr.common.config import get_fused_config_from_dir
    from flwr.common.constant import SUPERLINK_NODE_ID, TASK_ID_NUM_BYTES
    from flwr.server.superlink.linkstate.utils import generate_rand_int_from_bytes
    from flwr.simulation.run_simulation import _run_simulation
    from flwr.supercore.constant import NOOP_FEDERATION_ID
    from flwr.supercore.run import Run
    from flwr.supercore.task_identity import TaskIdentity
    from flwr.supercore.telemetry import EventType

    logging.getLogger("flwr").setLevel(logging.DEBUG if request.get("verbose") else logging.WARNING)
    run = Run.create_empty(run_id=int(request["run_id"]))  # chosen by the launcher, which holds its lock
    run.primary_task_id = generate_rand_int_from_bytes(TASK_ID_NUM_BYTES)
    run.federation_id = NOOP_FEDERATION_ID
    run.override_config = request["run_config"]
    TaskIdentity.task_id = run.primary_task_id
    TaskIdentity.run_id = run.run_id
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    context = Context(
        run_id=run.run_id,
        node_id=0,
        node_config={},
        state=RecordDict(),
        run_config=get_fused_config_from_dir(APP_DIR, run.override_config),
    )
    print(ray_starting_line(request), flush=True)
    backend = backend_config(float(request["cpus_per_node"]), float(request["gpus_per_node"]),
                             request.get("ray_address"), request.get("ray_temp_dir"))
    end_once_served(end)
    start_ray_while_importing(backend["init_args"], [SERVER_APP, CLIENT_APP])
    _run_simulation(
        num_supernodes=int(request["num_nodes"]),
        server_app_attr=SERVER_APP,
        client_app_attr=CLIENT_APP,
        backend_name="ray",
        backend_config=backend,
        app_dir=str(APP_DIR),
        run=run,
        server_app_context=context,
        is_app=True,
        verbose_logging=bool(request.get("verbose")),
        exit_event=EventType.FLWR_SIMULATION_RUN_LEAVE,
    )


def start_ray_while_importing(init_args: dict[str, Any], apps: list[str]) -> None:
    """Start Ray now, as Flower's RayBackend would, while another thread imports the apps' modules.

    Flower starts Ray only once it has loaded both apps, one after the other under one lock
    (`flwr.supercore.object_ref.load_app`): torch and the coordinator's stack, about 2 s on this
    kind of machine, with Ray's processes not yet started. Ray's start-up mostly waits on the
    processes it spawns, so the imports fit in that wait; Flower then finds Ray initialised
    (`RayBackend.init_ray` skips it) and the modules imported. The arguments are Flower 1.42's:
    `include_dashboard=False` unless set, and PYTHONPATH from `sys.path` (with the app directory,
    which `load_app` puts first) for the workers, also set in this process's environment. An
    import that fails stops Ray again and is raised, as Flower would raise it.
    """
    import importlib

    import ray

    if str(APP_DIR) not in sys.path:
        sys.path.insert(0, str(APP_DIR))
    pythonpath = os.pathsep.join(sys.path)  # taken before the imports start: what they do to sys.path cannot race it
    if os.environ.get("PYTHONPATH"):
        pythonpath = f"{pythonpath}{os.pathsep}{os.environ['PYTHONPATH']}"
    os.environ["PYTHONPATH"] = pythonpath
    failures: list[BaseException] = []

    def import_apps() -> None:
        try:
            for app in apps:
                importlib.import_module(app.partition(":")[0])
        except BaseException as err:  # noqa: BLE001 - re-raised below, in the engine's own thread
            failures.append(err)

    importer = threading.Thread(target=import_apps, name="fedgov-import-apps", daemon=True)
    importer.start()
    try:  # in the main thread: Ray installs its SIGTERM handler only there
        ray.init(runtime_env={"env_vars": {"PYTHONPATH": pythonpath}}, **{"include_dashboard": False, **init_args})
    finally:
        importer.join()
    if failures:  # Flower would have failed before starting Ray: stop it, then say why
        ray.shutdown()
        raise failures[0]


class Ending:
    """How the engine ends, on every path but a signal: once, with its code, whatever raises on the way.

    The first caller holds the lock and ends the process; a later one (RayWatch's thread, say)
    waits for the exit. A failure goes to `failure_path`, where the launcher reads the one line,
    and the output is flushed. A Ray cluster of the run's own is then ended by SIGKILL to every
    process under this one (Ray's agents outlast SIGTERM by seconds; whatever the run wrote is
    committed or written by now, and a node still training after its round's time-out is stopped
    with it). An attached cluster (`--ray-address`) is left as a driver's death leaves it: Ray
    ends the run's actors; `ray.shutdown()` is not called, since Flower's threads would start a
    new local Ray with their next call. The launcher still ends and reaps whatever carries the
    run's tag.
    """

    def __init__(self, failure_path: Path, attached: bool) -> None:
        self.failure_path, self.attached = failure_path, attached
        self._lock = threading.Lock()

    def __call__(self, failure: tuple[str, int] | None = None) -> NoReturn:
        """End the process: exit 0, or write `failure` (its line, its exit code) and exit with that code."""
        self._lock.acquire()
        code = 0 if failure is None else failure[1]
        try:
            if failure is not None:
                write_atomic(self.failure_path, json.dumps({"error": failure[0], "exit_code": code}).encode())
            sys.stdout.flush()
            sys.stderr.flush()
            if not self.attached:
                signal_all(descendants(os.getpid()), signal.SIGKILL)
        finally:
            os._exit(code)


def end_once_served(end: Ending) -> None:
    """Once the coordinator has ended (simulations/coordinator_end.py), end this process at once.

    Called in the ServerApp's thread before Flower learns that it returned, so none of Flower's
    teardown runs beside it (about 3.5 s on two cores), with the exit code the normal path gives.
    """
    from simulations.coordinator_end import when_coordinator_ends

    def finish(failure: FedgovError | None) -> NoReturn:
        end(None if failure is None else (str(failure), failure.exit_code))

    when_coordinator_ends(finish)


SERVER_APP_THREAD = "server_th_with_start_checks"


def _no_server_app_left(fail: Callable[[str], None], grace: float = 5.0) -> None:
    """The engine returned: a ServerApp thread still waiting for replies would hold the process until
    its round timeout, so the run ends here, failed, instead."""
    for thread in threading.enumerate():
        if SERVER_APP_THREAD in thread.name:  # Flower's, named after its target
            thread.join(grace)
            if thread.is_alive():
                fail("the Simulation Engine stopped before the ServerApp finished; see the output above")


def main() -> None:
    """Entry point: `python -m simulations.engine REQUEST.json`; user errors exit cleanly."""
    from fedgov.coordinator_keys import receive

    die_with_parent()
    receive()  # the coordinator's keys, from the pipe, before Flower and Ray start
    request_path = Path(sys.argv[1])
    request = json.loads(request_path.read_text())
    failure_path = request_path.parent / "failure.json"

    end = Ending(failure_path, attached=bool(request.get("ray_address")))

    def fail(reason: str) -> None:
        """Say why, and end at once: a ServerApp thread still waiting for replies must not hold the process."""
        end((reason, 1))

    RayWatch(fail)
    try:
        run_engine(request, end)
        _no_server_app_left(fail)
    except Exception as err:  # noqa: BLE001 - every way the engine can end becomes one line for the launcher
        # Flower re-raises a ServerApp exception as is, or wrapped in a RuntimeError.
        cause = err if isinstance(err, FedgovError) else err.__cause__
        if isinstance(cause, FedgovError):
            end((str(cause), cause.exit_code))
        fail(f"the Simulation Engine crashed ({_innermost(err)}); see the output above")


def _innermost(err: BaseException) -> str:
    """The first cause in the chain, as one short line: what actually went wrong."""
    while err.__cause__ is not None:
        err = err.__cause__
    return " ".join(f"{type(err).__name__}: {err}".split())[:300]


if __name__ == "__main__":
    main()
