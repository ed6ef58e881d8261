"""The coordinator's gatekeeper: only an approved app bundle's ServerApp runs, and only it gets the ledger's keys.

The ServerApp writes the ledger, so the process that runs it must hold the ledger's credentials
(`FEDGOV_PASSPHRASE`, or `FEDGOV_KEK` and `FEDGOV_SIGNING_KEY`). Flower's `flower-superexec`
starts a `flwr-serverapp` for every task the SuperLink hands it, whatever app bundle (FAB) the run
was started with, and anyone who reaches the loopback Control API can start a run with any bundle.
So `fedgov server start` runs this gatekeeper in its place (docs/security.md, threat 11). It takes
each task from the SuperLink's Runtime API (AcquireTask, signed with the SuperExec secret, as
`flower-superexec` does) and, for each one:

1. reads the run from the Control API (`ListRuns`): the run's `fab_hash`, which the SuperLink
   computed itself as the SHA-256 of the bundle it stored, and the run's primary task;
2. refuses a task that is not a ServerApp (`flwr-serverapp`), not its run's primary task, or names
   another bundle than its run, and one whose run's bundle hash is not approved: by default exactly
   fedgov's own bundle as built on this host (`deploy/app_bundle.py`), plus the hashes given with
   `fedgov server start --approve-app`. A refusal finishes the task as failed, with the reason as
   its details, through the task's own token (the way `flwr-serverapp` reports a failure), so the
   run ends failed and `fedgov run` prints why. Nothing of the bundle is written or imported, and
   no process is started for it;
3. for an approved bundle, starts Flower's own `flwr-serverapp` with the task token (in a 0600
   file, never on the command line), a fresh `FLWR_HOME` of its own (so Flower unpacks exactly
   the bytes it pulls instead of reusing an app folder already there) and the ledger's
   credentials in its environment. Only such a process ever gets them.

Why the run's `fab_hash` can be trusted, and why the bundle is not pulled here (flwr 1.42.0; the
references are to `flwr/` in the installed package):

- `StartRun` hashes the bytes it received, whatever hash the caller sent
  (`superlink/servicer/control/control_handlers.py:747-751`), and the state refuses to store a
  FAB under any other hash (`supercore/corestate/sql_corestate.py:570-576`, `612-616`).
- `flwr-serverapp` gets the bundle from `PullTaskInput`, which returns the FAB stored under the
  *run's* `fab_hash` (`superlink/servicer/runtime/runtime_handlers.py:322`), not the task's: a task
  made by another task (`CreateTask`) names a `fab_hash` of its requester's choosing
  (`supercore/servicer/runtime/runtime_handlers.py:158-166`). Hence the run is read, and only its
  primary task is run.
- A token pulls its task's inputs once: `PullTaskInput` moves the task from starting to running
  (`runtime_handlers.py:326`, `sql_corestate.py:1746-1756`), and a second pull fails. So the
  gatekeeper cannot pull the bundle to hash it and then let `flwr-serverapp` pull it again.
- A task can be finished as failed before it ever ran (`sql_corestate.py:1772-1774`: only
  `completed` needs a running task); that is how a refused run ends.
- `flwr-serverapp` unpacks the pulled bytes into `$FLWR_HOME/apps/<publisher>.<name>.<version>.
  <first 8 hex of their SHA-256>` and skips unpacking when that folder exists
  (`cli/install.py:178-186`); a fresh `FLWR_HOME` per task means that folder never exists.

`flwr` is pinned to 1.42.0 for these internals (docs/security.md).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVER_APP = "flwr-serverapp"
POLL_SECONDS = 0.5
STOP_GRACE = 3.0  # the coordinator SIGKILLs what is left 5 s after its SIGTERM
HASH_PATTERN = re.compile(r"[0-9a-f]{64}")


def check_hash(text: str) -> str:
    """A bundle hash as `fedgov app hash` prints it: 64 hex digits (lowercased); ValueError otherwise."""
    digest = text.strip().lower()
    if not HASH_PATTERN.fullmatch(digest):
        raise ValueError(f"{text[:80]!r} is not a SHA-256 (64 hex digits, as `fedgov app hash` prints one)")
    return digest


def run_config(run: Any) -> dict[str, Any]:
    """The run-config overrides the run was started with (Flower's Run proto)."""
    from flwr.common.serde import user_config_from_proto

    return dict(user_config_from_proto(run.override_config))


def check_places(config: Mapping[str, Any], workspace: Path) -> str | None:
    """Why the run's own settings must not steer this coordinator's ServerApp, or None.

    An approved bundle still takes the caller's run config. Its ServerApp holds the ledger's
    credentials, so it must open this coordinator's workspace and no other (an attacker's
    ledger would get checkpoints signed with the coordinator's key), and must not write its run
    files (config.json, rounds.json, the model) into the workspace, where config.json is the
    workspace's own.
    """
    named = config.get("workspace", "")
    if not isinstance(named, str) or (named and Path(named).resolve() != workspace):
        return (f"coordinator gatekeeper: the run names workspace {str(named)[:200]!r}, not this coordinator's "
                f"{str(workspace)!r}; its ServerApp was not started")
    out = config.get("out-dir", "")
    if not isinstance(out, str):
        return "coordinator gatekeeper: the run's out-dir is not a path; its ServerApp was not started"
    if out and Path(out).resolve().is_relative_to(workspace):
        return (f"coordinator gatekeeper: the run's out-dir {out[:200]!r} is inside the coordinator's workspace, "
                "whose files it would overwrite; choose a directory outside it")
    return None


def decide(task: Any, run: Any | None, approved: Iterable[str], workspace: Path | None = None,
           config: Mapping[str, Any] | None = None) -> str | None:
    """Why this task must not run here, or None. `task` is Flower's Task, `run` its Run (None: not found),
    `config` the run's run-config overrides, checked against `workspace` when the coordinator has one."""
    if task.type != SERVER_APP:
        return (f"coordinator gatekeeper: this coordinator runs ServerApps ({SERVER_APP}) only; a {task.type or 'typeless'}"
                " task is never started here")
    if run is None:
        return f"coordinator gatekeeper: run {task.run_id} of this task was not found"
    if run.primary_task_id != task.task_id or task.fab_hash != run.fab_hash:
        return (f"coordinator gatekeeper: task {task.task_id} is not run {run.run_id}'s own ServerApp task; only a "
                "run's primary task is started")
    if run.fab_hash not in set(approved):
        return (f"coordinator gatekeeper: app bundle '{run.fab_hash}' is not one this coordinator approved (fedgov's "
                "own, or one given to `fedgov server start --approve-app`); its ServerApp was not started and got no "
                "ledger credentials")
    if workspace is not None:
        return check_places(config or {}, workspace)
    return None


def _client(address: str, ca: Path, component: str, interceptors: list) -> Any:
    """Flower's Runtime API client over TLS, checked against the federation's CA; no retries of Flower's
    (its policy answers an HTTP 401 by sending SIGINT to its own process)."""
    from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor
    from flwr.supercore.runtime import RuntimeHttpClient

    return RuntimeHttpClient.from_server_address(
        server_address=address, insecure=False, root_certificates=str(ca),
        interceptors=[RuntimeVersionHttpInterceptor(component_name=component), *interceptors], retry_invoker=None)


def _control(address: str, ca: Path) -> Any:
    from flwr.supercore.control import ControlHttpClient
    from flwr.supercore.interceptors.http.runtime_version import RuntimeVersionHttpInterceptor

    return ControlHttpClient.from_server_address(address, insecure=False, root_certificates=str(ca),
                                                 interceptors=[RuntimeVersionHttpInterceptor(
                                                     component_name="flwr CLI")])


def refuse(address: str, ca: Path, token: str, reason: str) -> None:
    """Finish the task as failed with `reason`, through its own token, as `flwr-serverapp` reports a failure."""
    from flwr.common.constant import SubStatus
    from flwr.proto.runtime_pb2 import PushTaskOutputRequest
    from flwr.supercore.interceptors import RuntimeTokenHttpInterceptor

    with _client(address, ca, SERVER_APP, [RuntimeTokenHttpInterceptor(token)]) as client:
        client.PushTaskOutput(PushTaskOutputRequest(sub_status=SubStatus.FAILED, details=reason))


@dataclass
class Gatekeeper:
    """Take the SuperLink's tasks; start only approved ServerApps, with the ledger's credentials."""

    address: str  # the SuperLink's loopback address (Runtime and Control API)
    ca: Path
    secret: bytes  # the SuperExec secret: AcquireTask is served only when signed with it
    approved: frozenset[str]
    credentials: Mapping[str, str]  # the ledger's, for approved ServerApps only
    work: Path  # a fresh directory per started ServerApp (its FLWR_HOME and token file), removed after
    bin_dir: Path
    workspace: Path | None = None  # the coordinator's: the only one its ServerApps open
    running: dict[int, tuple[subprocess.Popen, Path]] = field(default_factory=dict)

    def serve(self) -> None:
        """Until a signal ends this process; an HTTP refusal of the secret ends it with an error."""
        import httpx
        from flwr.proto.runtime_pb2 import AcquireTaskRequest
        from flwr.supercore.constant import TaskType
        from flwr.supercore.interceptors import SuperExecAuthHttpInterceptor

        auth = SuperExecAuthHttpInterceptor(master_secret=self.secret,
                                            protected_methods={"/flwr.proto.Runtime/AcquireTask"})
        # every type: a task of another type (a simulation, an agent) is refused in words, not left pending
        request = AcquireTaskRequest(supported_task_types=[t.value for t in TaskType])
        answering = None  # said once per change: the SuperLink starts beside this process, or restarts
        with _client(self.address, self.ca, "SuperExec", [auth]) as client:
            while True:
                self._reap()
                try:
                    response = client.AcquireTask(request)
                except httpx.HTTPStatusError as err:
                    if err.response.status_code in (401, 403):
                        raise SystemExit(f"error: the SuperLink refused the SuperExec secret (HTTP "
                                         f"{err.response.status_code}); no ServerApp can be started") from None
                    _say(f"AcquireTask failed (HTTP {err.response.status_code}); retrying")
                    time.sleep(1.0)
                    continue
                except httpx.TransportError as err:  # the coordinator watches the SuperLink's process
                    if answering is not False:
                        _say(f"the SuperLink's Runtime API is not answering yet ({type(err).__name__}); waiting")
                    answering = False
                    time.sleep(0.5)
                    continue
                if not answering:
                    _say(f"taking tasks from {self.address}")
                    answering = True
                if response.token and response.HasField("task"):
                    self._handle(response.task, response.token)
                else:
                    time.sleep(POLL_SECONDS)

    def _handle(self, task: Any, token: str) -> None:
        what = f"run {task.run_id} (task {task.task_id}, {task.type or 'no type'})"
        try:
            run = self._run(task.run_id)
            reason = decide(task, run, self.approved, self.workspace, run_config(run) if run is not None else {})
        except Exception as err:  # noqa: BLE001 - whatever failed, this task does not run
            reason = f"coordinator gatekeeper: could not check run {task.run_id} ({type(err).__name__}: {err})"[:500]
        if reason is not None:
            try:
                refuse(self.address, self.ca, token, reason)
                _say(f"{what}: refused: {reason}")
            except Exception as err:  # noqa: BLE001 - the task expires by itself (no heartbeat) and fails
                _say(f"{what}: refused, but recording the refusal failed ({type(err).__name__}: {err}): {reason}")
            return
        child, where = self._start(task, token)
        self.running[child.pid] = (child, where)
        _say(f"{what}: app bundle {task.fab_hash} approved; started {SERVER_APP} pid {child.pid}"
             + (" with the ledger credentials" if self.credentials else " (no ledger credentials were given)"))

    def _run(self, run_id: int) -> Any | None:
        from flwr.proto.control_pb2 import ListRunsRequest

        with _control(self.address, self.ca) as control:
            return control.ListRuns(ListRunsRequest(run_id=run_id)).run_dict.get(run_id)

    def _start(self, task: Any, token: str) -> tuple[subprocess.Popen, Path]:
        from fedgov.processes import parent_death_signal
        from governance.private_files import write_atomic

        where = Path(tempfile.mkdtemp(prefix=f"run-{task.run_id}-", dir=self.work))  # 0700
        write_atomic(where / "token", token.encode("ascii"), durable=False)  # 0600: a token on argv would be in every `ps`
        env = {key: value for key, value in os.environ.items() if key != "FLWR_HOME"}
        env.update(self.credentials)
        env["FLWR_HOME"] = str(where / "flwr-home")  # fresh: Flower unpacks the very bytes it pulls
        if self.workspace is not None:
            env["FEDGOV_HOME"] = str(self.workspace)  # a run that names none opens this one too
        command = [str(self.bin_dir / SERVER_APP), "--runtime-api-address", self.address, "--token-file",
                   str(where / "token"), "--root-certificates", str(self.ca), "--parent-pid", str(os.getpid())]
        child = subprocess.Popen(command, env=env, cwd=where, stdin=subprocess.DEVNULL, umask=0o077,
                                 preexec_fn=parent_death_signal())
        return child, where

    def _reap(self) -> None:
        for pid, (child, where) in list(self.running.items()):
            code = child.poll()
            if code is not None:
                del self.running[pid]
                shutil.rmtree(where, ignore_errors=True)
                _say(f"{SERVER_APP} pid {pid} ended with code {code}")

    def stop(self) -> None:
        """SIGTERM every ServerApp still running, SIGKILL after a grace period; remove their directories."""
        for child, _ in self.running.values():
            child.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for child, _ in self.running.values():
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for _, where in self.running.values():
            shutil.rmtree(where, ignore_errors=True)
        self.running.clear()


def own_bundle_hash() -> str:
    """The SHA-256 of fedgov's own app bundle as built from this installation (`fedgov app hash`)."""
    from deploy.app_bundle import bundle_sha256
    from fedgov.settings import APP_DIR

    try:
        return bundle_sha256()
    except Exception as err:  # noqa: BLE001 - any failure to build is one line: nothing can be approved by it
        raise SystemExit(f"error: cannot build fedgov's own app bundle from {APP_DIR} ({type(err).__name__}: {err}); "
                         "the gatekeeper approves it by its hash") from None


def _say(line: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} gatekeeper: {line}", flush=True)


def _interrupted(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    """`python -m deploy.coordinator_gate`, as `fedgov server start` starts it; the ledger's credentials
    arrive over the pipe named in FEDGOV_KEYS_FD (fedgov/coordinator_keys.py), never by environment."""
    from fedgov.coordinator_keys import handed_over, receive

    parser = argparse.ArgumentParser(prog="python -m deploy.coordinator_gate")
    parser.add_argument("--runtime-api-address", required=True)
    parser.add_argument("--root-certificates", required=True, type=Path)
    parser.add_argument("--superexec-auth-secret-file", required=True, type=Path)
    parser.add_argument("--work-dir", required=True, type=Path)
    parser.add_argument("--approve", action="append", default=[], type=check_hash)
    parser.add_argument("--workspace", type=Path, default=None,
                        help="the coordinator's workspace: the only one a ServerApp may open")
    parser.add_argument("--approve-own-bundle", action="store_true",
                        help="approve fedgov's own app bundle, as Flower builds it from this installation")
    args = parser.parse_args(argv)
    receive()
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    approved = set(args.approve)
    if args.approve_own_bundle:
        approved.add(own_bundle_hash())
    shutil.rmtree(args.work_dir, ignore_errors=True)  # what a killed gatekeeper left behind
    args.work_dir.mkdir(mode=0o700, parents=True)
    keeper = Gatekeeper(args.runtime_api_address, args.root_certificates, args.superexec_auth_secret_file.read_bytes(),
                        frozenset(approved), handed_over(), args.work_dir, Path(sys.executable).parent,
                        args.workspace.resolve() if args.workspace else None)
    _say(f"approves app bundles {', '.join(sorted(approved)) or '(none)'}")
    try:
        keeper.serve()
    finally:
        keeper.stop()
        shutil.rmtree(args.work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
