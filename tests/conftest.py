"""Shared test set-up: Flower stays offline and inside the test's workspace."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fedgov_command import MARK_VARIABLE, PASSPHRASE, run_fedgov

REPO = Path(__file__).resolve().parent.parent
os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
os.environ["FLWR_DISABLE_UPDATE_CHECK"] = "1"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO"] = "0"

RAY_OR_FLOWER = ("raylet", "gcs_server", "ray::", "default_worker.py", "flower-superlink",
                 "flower-supernode", "flwr-", "simulations.engine", "dashboard/agent.py", "log_monitor.py")


# Every command this test session starts, and everything those start (Ray and Flower included),
# inherits this mark; a check for leftovers looks at marked processes only, never at another
# user's Ray cluster or Flower processes on the same machine.
SESSION_MARK = f"session-{uuid.uuid4().hex}"
os.environ[MARK_VARIABLE] = SESSION_MARK


def processes_marked(mark: str, words: tuple[str, ...] = ()) -> dict[int, str]:
    """Live (non-zombie) processes whose environment carries `mark`, and every live process under one of them,
    optionally only those naming one of `words`.

    Under them too: Ray's agents retitle themselves (setproctitle), which zeroes the start of what
    /proc/PID/environ shows (measured: 570 to 1,450 bytes, with the variables in no fixed order), so the mark
    of an agent may be gone; its raylet's is not."""
    marked, parent, found = set(), {}, {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            state, ppid = (proc / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            environ = (proc / "environ").read_bytes()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        if state == "Z":
            continue
        pid = int(proc.name)
        parent[pid], found[pid] = int(ppid), cmdline
        if f"{MARK_VARIABLE}={mark}".encode() in environ.split(b"\0"):
            marked.add(pid)
    under = set(marked)
    grew = True
    while grew:
        more = {pid for pid, ppid in parent.items() if ppid in under and pid not in under}
        under |= more
        grew = bool(more)
    return {pid: found[pid][:120] for pid in under if not words or any(w in found[pid] for w in words)}


def live_processes_matching(words: tuple[str, ...] = RAY_OR_FLOWER) -> list[str]:
    """Command lines of live Ray or Flower processes that this test session's commands started."""
    return [f"{pid}: {cmd}" for pid, cmd in processes_marked(SESSION_MARK, words).items()]


os.environ["FEDGOV_PASSPHRASE"] = PASSPHRASE  # in-process code of module-scoped fixtures too

# The longest modules (Flower simulations on Ray, federations on loopback), about longest first. `make test` runs
# two workers, each taking the next whole module in collection order (--dist loadscope
# --no-loadscope-reorder): were one of these left for the end, one worker would run it alone while the
# other idled (xdist's own order, most tests first, put the one-test deployment modules last). Simulations
# (CPU-bound) alternate with loopback federations (mostly waiting on Flower's 3 s polls), so the two
# workers tend to pair one of each. Other modules of tests/e2e and tests/deploy come next, then the rest, in
# the order collected: add a new long module here. A module missing here is only scheduled later, never
# skipped; a name here that is no module stops the session.
LONGEST_FIRST = (  # seconds each took, one module after another, on two busy cores (*: estimated from its time
    # alone on a quiet machine, which a simulation takes 2-3 times over on two busy cores; a federation, which
    # mostly waits on Flower's polls, about 1.2 times)
    "e2e/test_simulation.py",  # 231
    "deploy/test_federation_up.py",  # 136
    "e2e/test_governed_rounds.py",  # 187
    "deploy/test_federation.py",  # 120* (97-107 alone with its SecAgg+ run beside the first; 71 before, and 122 the
    # SecAgg+ run on a federation of its own)
    "e2e/test_signals.py",  # 152
    "deploy/test_restart_and_dropout.py",  # 92
    "e2e/test_resources.py",  # 113
    "deploy/test_server_start.py",  # 64
    "e2e/test_privacy_budget.py",  # 93 (32 alone)
    "deploy/test_node_register.py",  # 44
    "e2e/test_monitoring.py",  # 85* (34 alone: its simulation 15, the retraining run 16)
    "deploy/test_gatekeeper_loopback.py",  # 38
    "e2e/test_contained_engine.py",  # 75
    "deploy/test_ledger_backup.py",  # 36
    "e2e/test_secure_aggregation.py",  # 68 (30 alone)
    "governance/test_cli_hostile_arguments.py",  # 32
    "e2e/test_compliance_officer.py",  # 67
    "deploy/test_node_join.py",  # 30
    "e2e/test_retraining.py",  # 25* (9-12 alone)
    "deploy/test_app_bundle.py",  # 20* (10 alone)
    "deploy/test_certs.py",  # 17* (9 alone)
    "deploy/test_coordinator_gate.py",  # 16* (8 alone)
    "deploy/test_service_recipes.py",  # 1
    "deploy/test_gatekeeper_secagg.py",  # 1
    "deploy/test_activation_refusal.py",  # 1
    "deploy/test_gatekeeper.py",  # 1
    "deploy/test_connection_watch.py",  # 1
)
_MISSING = [name for name in LONGEST_FIRST if not (REPO / "tests" / name).is_file()]
assert not _MISSING, f"tests/conftest.py LONGEST_FIRST names modules that do not exist: {_MISSING}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules of LONGEST_FIRST first, in its order; then any other module of tests/e2e or tests/deploy (a
    simulation or federation not listed yet must not fall to the end); then the rest. Each module's tests keep
    their order."""
    rank = {REPO / "tests" / name: i for i, name in enumerate(LONGEST_FIRST)}
    slow = (REPO / "tests" / "e2e", REPO / "tests" / "deploy")

    def place(item: pytest.Item) -> int:
        return rank.get(item.path, len(rank) if item.path.parent in slow else len(rank) + 1)

    items.sort(key=place)


@pytest.fixture(autouse=True)
def _isolated_homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own Flower home and fedgov workspace, never the repo's."""
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr-home"))
    monkeypatch.setenv("FEDGOV_HOME", str(tmp_path / "workspace"))
    monkeypatch.setenv("FEDGOV_PASSPHRASE", PASSPHRASE)


@pytest.fixture
def fedgov(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`run_fedgov` inside this test's own workspace (the FEDGOV_HOME above) and directory."""
    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return run_fedgov(*args, cwd=tmp_path, env={"FEDGOV_HOME": str(tmp_path / "workspace"), **(env or {})},
                          timeout=timeout)
    return run


@pytest.fixture
def ray_or_flower_processes():
    return live_processes_matching
