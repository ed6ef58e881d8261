"""The simulation engine is contained: the current directory cannot replace it, node code never inherits
the coordinator's secrets (issue 8, item 5), and another user's Ray cluster on the same machine is neither
joined nor disturbed. One real `fedgov sim run`, started beside such a cluster, shows all three."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import processes_marked
from tests.e2e.ray_head import RAY, start_ray_head, stop_marked
from tests.fedgov_command import MARK_VARIABLE, fedgov_argv, fedgov_env

pytestmark = pytest.mark.timeout(600)


def _environ(pid: str) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


@dataclass(frozen=True)
class Foreign:
    """Another user's Ray head: its processes before and after the run, and `ray status` against it after."""

    before: set[int]
    after: set[int]
    status: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def foreign_ray_head():
    """A Ray head started before the run and stopped after it, as another user's would be."""
    address, mark = start_ray_head("--num-cpus=1")
    try:
        yield address, mark
    finally:
        stop_marked(mark)


@pytest.fixture(scope="module")
def contained_run(tmp_path_factory, foreign_ray_head):
    """A run started from a directory whose own `simulations/engine.py` would run if imported first, beside
    another user's Ray head."""
    address, foreign_mark = foreign_ray_head
    before = set(processes_marked(foreign_mark))
    cwd = tmp_path_factory.mktemp("hostile-cwd")
    (cwd / "simulations").mkdir()
    (cwd / "simulations" / "__init__.py").write_text("")
    (cwd / "simulations" / "engine.py").write_text(
        "import os, pathlib\npathlib.Path('HIJACKED').write_text(os.environ.get('FEDGOV_PASSPHRASE', ''))\n")
    mark = uuid.uuid4().hex
    env = fedgov_env({MARK_VARIABLE: mark, "FLWR_HOME": str(cwd / "flwr"), "FEDGOV_HOME": str(cwd / "workspace")})
    proc = subprocess.Popen(fedgov_argv("sim", "run", "--nodes", "3", "--rounds", "1", "--out", str(cwd / "run")),
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[str, dict[str, str]] = {}
    done = threading.Event()

    def watch() -> None:  # every process of this run carries the mark; record each one's environment
        while not done.is_set():
            for entry in Path("/proc").glob("[0-9]*"):
                if entry.name != str(proc.pid) and entry.name not in seen:
                    environ = _environ(entry.name)
                    if environ.get(MARK_VARIABLE) == mark:
                        cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                        seen[entry.name] = {**environ, "_cmdline": cmdline}
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = proc.communicate(timeout=600)
    done.set()
    watcher.join()
    after = set(processes_marked(foreign_mark))
    status = subprocess.run([RAY, "status", f"--address={address}"], capture_output=True, text=True, timeout=60)
    return proc.returncode, out, err, cwd, seen, Foreign(before, after, status)


def test_the_run_succeeds_and_never_imports_the_current_directorys_engine(contained_run):
    code, _, err, cwd, _, _ = contained_run
    assert code == 0, err[-3000:]
    assert not (cwd / "HIJACKED").exists()


def test_no_process_the_run_starts_inherits_the_passphrase(contained_run):
    _, _, _, _, seen, _ = contained_run
    workers = [pid for pid, env in seen.items() if "default_worker" in env["_cmdline"] or "ray::" in env["_cmdline"]]
    assert workers, f"the watcher saw no Ray worker: {[e['_cmdline'][:80] for e in seen.values()]}"
    # a worker's own environment may show zeroes where it retitled itself; the raylet's, whose copy every worker
    # and agent starts from, never does
    assert [pid for pid, env in seen.items() if env["_cmdline"].split(" ", 1)[0].endswith("/raylet")], \
        f"the watcher saw no raylet: {[e['_cmdline'][:80] for e in seen.values()]}"
    leaked = {pid: env["_cmdline"][:80] for pid, env in seen.items()
              if any(k in env for k in ("FEDGOV_PASSPHRASE", "FEDGOV_KEK", "FEDGOV_SIGNING_KEY"))}
    assert leaked == {}


def test_a_run_beside_a_foreign_ray_cluster_leaves_it_running_and_untouched(contained_run):
    """Another user's Ray head on the same machine: the run neither joins nor disturbs it."""
    code, _, err, _, _, foreign = contained_run
    assert foreign.before
    assert code == 0, err[-3000:]
    assert foreign.after == foreign.before  # every process of the foreign head still there
    assert foreign.status.returncode == 0, foreign.status.stderr  # it still answers
