"""The node's gatekeeper: no code the coordinator sends runs before the site's policy has allowed it.

A check inside the ClientApp would be the coordinator's own code, so it would prove nothing.
Instead the node runs `flower-supernode --isolation process`, which launches no ClientApp of
its own, and this gatekeeper takes each task from the SuperNode's loopback Runtime API (signed
with the SuperExec secret the two share). For each task, in a fresh process, it:

1. pulls the instruction, its context and the app bundle (FAB);
2. recomputes the bundle's SHA-256 (never trusting the hash it was told) and checks the site
   policy: an approved bundle, an allowed purpose, at most so many rounds, enough DP noise;
3. refused: replies with an error carrying the reason, which the coordinator records, and
   nothing of the bundle is written or imported;
4. allowed: unpacks the bundle into a fresh directory of its own (never the shared
   `$FLWR_HOME/apps`, where a folder already there would be used as is), loads its ClientApp,
   runs it and replies.

This follows Flower 1.42's own `flwr-clientapp` (`flwr/supernode/runtime/run_clientapp.py`),
whose task pull and push it uses; `flwr` is pinned to 1.42.0 for it (docs/security.md).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from client.policy import SitePolicy
from fedgov.settings import DP_MODES

TASK_TYPE = "flwr-clientapp"
TOKEN_VARIABLE = "FEDGOV_TASK_TOKEN"  # the task token reaches the task process by environment, never argv
POLL_SECONDS = 0.5
_stopping = 0  # the signal that told this task process to stop: it unwinds, without talking to the SuperNode


def bundle_hash(fab_content: bytes) -> str:
    """The SHA-256 of an app bundle, as the site policy's `app_hashes` list them."""
    return hashlib.sha256(fab_content).hexdigest()


def decide(policy: SitePolicy, fab_content: bytes, run_config: Mapping[str, Any]) -> str | None:
    """Why this node refuses the task, or None: checked before anything of the bundle is written."""
    purpose = run_config.get("purpose")
    if not isinstance(purpose, str) or not purpose:
        return "site policy: the run declares no purpose"
    rounds = run_config.get("num-server-rounds")
    if isinstance(rounds, bool) or not isinstance(rounds, int):
        return "site policy: the run declares no whole number of rounds (num-server-rounds)"
    noise = run_config.get("dp-noise-multiplier", 0.0)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)):
        return "site policy: the run's dp-noise-multiplier is not a number"
    dp = run_config.get("dp", "none")
    if dp not in DP_MODES:
        return f"site policy: the run's dp mode {dp!r} is not one fedgov applies ({', '.join(DP_MODES)})"
    if dp != "none" and not 0 < noise < math.inf:  # NaN included
        return f"site policy: the run's dp-noise-multiplier {noise!r} is no noise"
    # Noise counts only where the app applies it: with dp "none" a declared multiplier is no noise at all.
    return policy.check_run(purpose=purpose, app_hash=bundle_hash(fab_content), rounds=rounds,
                            dp_noise_multiplier=float(noise) if dp != "none" else 0.0)


def count_training(counters: Path, run_id: int) -> int:
    """Count one more training instruction of `run_id`, outside any bundle's reach; return the count so far.

    The declared number of rounds is only a declaration: a coordinator could declare one round and
    send ten. Each task process adds one under an exclusive lock, in the node's own directory.
    """
    import fcntl

    counters.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(counters / f"{int(run_id)}", os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        count = int(f.read() or 0) + 1
        f.seek(0)
        f.truncate()
        f.write(str(count))
        return count


def _runtime_client(address: str, interceptors: list, retry: bool) -> Any:
    """A client of the SuperNode's loopback Runtime API.

    `retry` uses Flower's own retry policy, which answers an HTTP 401 by sending SIGINT to its
    own process: right for a task process (as in Flower's `flwr-clientapp`), wrong for the
    long-lived `fedgov node join`, whose acquire loop therefore retries by itself.
    """
    from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor
    from flwr.supercore.retry import make_simple_http_retry_invoker
    from flwr.supercore.runtime import RuntimeHttpClient

    return RuntimeHttpClient.from_server_address(
        server_address=address, insecure=True, root_certificates=None,  # loopback, on the node's own machine
        interceptors=[RuntimeVersionHttpInterceptor(component_name=TASK_TYPE), *interceptors],
        retry_invoker=make_simple_http_retry_invoker() if retry else None)


def run_task(address: str, token: str, site: Path) -> int:
    """One task, in this process: pull, check, refuse or run, reply. Returns the process exit code."""
    from flwr.app import Error, Message
    from flwr.cli.install import install_from_fab
    from flwr.clientapp.utils import get_load_client_app_fn
    from flwr.common.constant import ErrorCode, SubStatus
    from flwr.supercore.heartbeat import HeartbeatSender, make_task_heartbeat_fn_http
    from flwr.supercore.interceptors import RuntimeTokenHttpInterceptor
    from flwr.supernode.runtime.run_clientapp import pull_task_input, push_message, push_task_output

    client = _runtime_client(address, [RuntimeTokenHttpInterceptor(token)], retry=True)
    heartbeat = HeartbeatSender(make_task_heartbeat_fn_http(client))
    heartbeat.start()
    context, status, details, code = None, SubStatus.FAILED, "the task failed before it started", 1
    unpacked = Path(tempfile.mkdtemp(prefix="fedgov-app-"))
    try:
        message, context, run, fab = pull_task_input(client)
        policy = SitePolicy.load(site)
        reason = decide(policy, fab.content, context.run_config)
        if reason is None and message.metadata.message_type == "train":
            allowed = min(int(context.run_config["num-server-rounds"]), policy.max_rounds)
            sent = count_training(site.parent / "runs", run.run_id)
            if sent > allowed:
                reason = (f"site policy: this is the run's training instruction number {sent}, more than the "
                          f"{allowed} rounds it may have here")
        if reason is not None:
            reply = Message(Error(code=ErrorCode.MOD_FAILED_PRECONDITION, reason=reason), reply_to=message)
            details = reason
        else:
            app_dir = install_from_fab(fab.content, install_dir=unpacked / "app", skip_prompt=True)
            app = get_load_client_app_fn("", str(app_dir), True)(run.fab_id, run.fab_version, fab.hash_str)
            reply = app(message=message, context=context)
            status, details, code = SubStatus.COMPLETED, "", 0
        push_message(client, reply, context)
    except Exception as err:  # noqa: BLE001 - whatever the app raised, the node replies and lives on
        details = f"{type(err).__name__}: {err}"[:500]
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)  # first: what follows talks to the SuperNode, which may be gone
        if _stopping:  # by a signal: the SuperNode is stopping too, and Flower's calls to it (the reply, the
            os._exit(128 + _stopping)  # heartbeat thread that stop() joins) would retry until SIGKILL
        push_task_output(client, context, status, details)
        heartbeat.stop()
        client.close()
    return code


def task_environment() -> dict[str, str]:
    """What a task process (and the bundle it runs) inherits: this environment without any fedgov secret
    and without Flower settings meant for other components."""
    from fedgov.coordinator_keys import split_secrets

    clean, _ = split_secrets(os.environ)
    return {k: v for k, v in clean.items() if not k.startswith("FLWR_") or k in (
        "FLWR_HOME", "FLWR_TELEMETRY_ENABLED", "FLWR_DISABLE_UPDATE_CHECK")}


def serve(address: str, secret: bytes, site: Path, stop: threading.Event) -> None:
    """Take the SuperNode's tasks until `stop`; each runs in a fresh process (a new interpreter, so
    no module of one run's bundle is reused by the next)."""
    from flwr.proto.runtime_pb2 import AcquireTaskRequest
    from flwr.supercore.interceptors import SuperExecAuthHttpInterceptor

    client = _runtime_client(address, [SuperExecAuthHttpInterceptor(
        master_secret=secret, protected_methods={"/flwr.proto.Runtime/AcquireTask"})], retry=False)
    try:
        while not stop.is_set():
            response = client.AcquireTask(AcquireTaskRequest(supported_task_types=[TASK_TYPE]))
            if response.token:
                subprocess.run([sys.executable, "-P", "-m", "deploy.gatekeeper", address, str(site)],
                               env={**task_environment(), TOKEN_VARIABLE: response.token}, check=False)
            else:
                stop.wait(POLL_SECONDS)
    finally:
        client.close()


def main() -> None:
    """`python -m deploy.gatekeeper RUNTIME_ADDRESS SITE_FILE`, with the task token in the environment."""
    import signal

    def stopped(signum: int, _frame: object) -> None:  # `node join` stopping: unwind, so the unpacked app is removed
        global _stopping
        _stopping = signum
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stopped)
    signal.signal(signal.SIGINT, stopped)
    token = os.environ.pop(TOKEN_VARIABLE, "")
    if len(sys.argv) != 3 or not token:
        sys.exit("usage: FEDGOV_TASK_TOKEN=... python -m deploy.gatekeeper RUNTIME_ADDRESS SITE_FILE")
    sys.exit(run_task(sys.argv[1], token, Path(sys.argv[2])))


if __name__ == "__main__":
    main()
