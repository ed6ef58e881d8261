"""Threat 11 (docs/security.md): a run started through the coordinator's loopback Control API with an app bundle
the operator did not approve never gets the ledger's credentials. Against a real `fedgov server start` (with
FEDGOV_PASSPHRASE), a hostile ServerApp that writes every secret it finds to a file is started twice: a copy one
byte apart from the approved one is refused before anything of it runs, and its run ends failed with the reason
`fedgov run` prints; the approved copy runs and does find the passphrase, so the first one would have too."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from deploy.coordinator_gate import check_hash, decide
from tests.conftest import processes_marked
from tests.deploy.superlink import write_certs
from tests.deploy.test_server_start import start
from tests.fedgov_command import PASSPHRASE

pytestmark = pytest.mark.timeout(240)

THIEF_PYPROJECT = """[project]
name = "thief"
version = "1.0.0"
dependencies = ["flwr==1.42.0"]

[tool.flwr.app]
publisher = "fedgov-tests"

[tool.flwr.app.components]
serverapp = "thief.apps:server"
clientapp = "thief.apps:client"

[tool.flwr.app.config]
out = ""
"""

THIEF_APP = '''"""A hostile ServerApp: it writes its whole environment, and where its code was loaded from, to the run
config's `out` file."""
import json
import os
from pathlib import Path

from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

server = ServerApp()
client = ClientApp()


@server.main()
def main(grid, context):
    Path(str(context.run_config["out"])).write_text(json.dumps({"environ": dict(os.environ), "code": __file__}))
'''


def thief_bundle(where: Path, variant: str) -> bytes:
    """The hostile app's bundle; each variant differs from the others by one byte of its code."""
    from flwr.cli.build import build_fab_from_disk

    (where / "thief").mkdir(parents=True)
    (where / "pyproject.toml").write_text(THIEF_PYPROJECT)
    (where / "thief" / "__init__.py").write_text("")
    (where / "thief" / "apps.py").write_text(THIEF_APP + f"# {variant}\n")
    return build_fab_from_disk(where)


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory: pytest.TempPathFactory):
    """`fedgov server start` with the passphrase, approving fedgov's own bundle and the thief's variant A."""
    root = tmp_path_factory.mktemp("gate")
    approved, other = thief_bundle(root / "thief-a", "A"), thief_bundle(root / "thief-b", "B")
    running = start(root / "server", write_certs(root / "certs"), "--approve-app", hashlib.sha256(approved).hexdigest())
    try:
        yield running, approved, other
    finally:
        assert running.stop(signal.SIGTERM) == 143
        assert processes_marked(running.mark) == {}
        assert not any((running.state / "serverapps").glob("*"))  # each ServerApp's directory went with it


def launch(running, bundle: bytes, out: Path):
    """Start a run of `bundle` through the loopback Control API and follow it to its end, as `fedgov run` does."""
    from deploy.launch import follow
    from deploy.launch import start as start_run
    from deploy.registration import control_client

    with control_client(f"127.0.0.1:{running.link}", running.certs / "ca.crt") as client:
        run_id = start_run(client, bundle, hashlib.sha256(bundle).hexdigest(), {"out": str(out)})
        return follow(client, run_id, lambda line: None)


def test_an_unapproved_bundle_never_runs_never_gets_the_keys_and_its_run_fails_with_the_reason(coordinator,
                                                                                               tmp_path: Path):
    running, _, other = coordinator
    digest = hashlib.sha256(other).hexdigest()
    outcome = launch(running, other, tmp_path / "stolen.json")
    reason = (f"coordinator gatekeeper: app bundle '{digest}' is not one this coordinator approved (fedgov's own, or "
              "one given to `fedgov server start --approve-app`); its ServerApp was not started and got no ledger "
              "credentials")
    assert (outcome.status, outcome.sub_status, outcome.details) == ("finished", "failed", reason)
    assert not (tmp_path / "stolen.json").exists()  # its ServerApp never ran
    log = (running.state / "logs" / "gatekeeper.log").read_text().splitlines()
    about = [line for line in log if f"run {outcome.run_id} (task " in line]
    assert len(about) == 1 and about[0].endswith(f"refused: {reason}"), about  # no process was started for it
    assert not [p for p in running.state.rglob("*") if digest[:8] in p.name]  # nothing of it was unpacked


def test_an_approved_bundle_runs_and_only_it_gets_the_ledger_credentials(coordinator, tmp_path: Path):
    running, approved, _ = coordinator
    digest = hashlib.sha256(approved).hexdigest()
    outcome = launch(running, approved, tmp_path / "stolen.json")
    assert (outcome.status, outcome.sub_status) == ("finished", "completed"), outcome.details
    stolen = json.loads((tmp_path / "stolen.json").read_text())
    environment = stolen["environ"]
    assert environment["FEDGOV_PASSPHRASE"] == PASSPHRASE  # what the refused copy would have read
    home = Path(environment["FLWR_HOME"])  # a fresh one for this run, removed when its ServerApp ends
    assert home.parent.parent == running.state / "serverapps" and "FEDGOV_KEYS_FD" not in environment
    # the code that ran is the bundle's own bytes, unpacked into that fresh home
    assert Path(stolen["code"]) == home / "apps" / f"fedgov-tests.thief.1.0.0.{digest[:8]}" / "thief" / "apps.py"
    deadline = time.monotonic() + 20
    while home.parent.exists():
        assert time.monotonic() < deadline, "the gatekeeper did not clean up after its ServerApp"
        time.sleep(0.2)
    log = (running.state / "logs" / "gatekeeper.log").read_text()
    started = re.search(rf"run {outcome.run_id} \(task \d+, flwr-serverapp\): app bundle {digest} approved; started "
                        r"flwr-serverapp pid (\d+) with the ledger credentials\n", log)
    assert started and f"flwr-serverapp pid {started[1]} ended with code 0" in log


def _task(**fields):
    return SimpleNamespace(**{"type": "flwr-serverapp", "task_id": 7, "run_id": 3, "fab_hash": "a" * 64, **fields})


def _run(**fields):
    return SimpleNamespace(**{"run_id": 3, "primary_task_id": 7, "fab_hash": "a" * 64, **fields})


@pytest.mark.parametrize("task,run,starts", [
    (_task(), _run(), "approved"),
    (_task(fab_hash="b" * 64), _run(fab_hash="b" * 64), "coordinator gatekeeper: app bundle 'bbbb"),
    (_task(type="flwr-simulation"), _run(), "coordinator gatekeeper: this coordinator runs ServerApps (flwr-serverapp) "
                                            "only; a flwr-simulation task is never started here"),
    (_task(task_id=8), _run(), "coordinator gatekeeper: task 8 is not run 3's own ServerApp task"),
    (_task(fab_hash="b" * 64), _run(), "coordinator gatekeeper: task 7 is not run 3's own ServerApp task"),
    (_task(), None, "coordinator gatekeeper: run 3 of this task was not found"),
])
def test_only_a_runs_own_serverapp_task_of_an_approved_bundle_is_started(task, run, starts):
    reason = decide(task, run, {"a" * 64})
    assert (reason or "approved").startswith(starts)


def test_an_approved_hash_is_64_hex_digits():
    assert check_hash(" " + "AB" * 32 + "\n") == "ab" * 32
    with pytest.raises(ValueError):
        check_hash("ab" * 31)


WORKSPACE = Path("/srv/fedgov/ws")


@pytest.mark.parametrize("config,starts", [
    ({"workspace": str(WORKSPACE), "out-dir": ""}, "approved"),
    ({}, "approved"),  # none named: the gatekeeper gives the ServerApp this coordinator's workspace
    ({"workspace": str(WORKSPACE), "out-dir": "/srv/fedgov/runs/r1"}, "approved"),
    ({"workspace": "/tmp/attacker/ws"}, "coordinator gatekeeper: the run names workspace '/tmp/attacker/ws', not this "
                                        "coordinator's '/srv/fedgov/ws'; its ServerApp was not started"),
    ({"workspace": str(WORKSPACE), "out-dir": str(WORKSPACE)},
     "coordinator gatekeeper: the run's out-dir '/srv/fedgov/ws' is inside the coordinator's workspace"),
    ({"workspace": str(WORKSPACE), "out-dir": str(WORKSPACE / "coordinator" / "x")},
     "coordinator gatekeeper: the run's out-dir '/srv/fedgov/ws/coordinator/x' is inside"),
])
def test_an_approved_bundles_serverapp_opens_only_this_coordinators_workspace_and_never_writes_into_it(config, starts):
    reason = decide(_task(), _run(), {"a" * 64}, WORKSPACE, config)
    assert (reason or "approved").startswith(starts)
