"""The simulation engine is contained: the current directory cannot replace it, and node code never
inherits the coordinator's secrets (issue 8, item 5). One real `fedgov sim run` shows both."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.fedgov_command import MARK_VARIABLE, fedgov_argv, fedgov_env

pytestmark = pytest.mark.timeout(600)


def _environ(pid: str) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


@pytest.fixture(scope="module")
def contained_run(tmp_path_factory):
    """A run started from a directory whose own `simulations/engine.py` would run if imported first."""
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
    return proc.returncode, out, err, cwd, seen


def test_the_run_succeeds_and_never_imports_the_current_directorys_engine(contained_run):
    code, _, err, cwd, _ = contained_run
    assert code == 0, err[-3000:]
    assert not (cwd / "HIJACKED").exists()


def test_no_process_the_run_starts_inherits_the_passphrase(contained_run):
    _, _, _, _, seen = contained_run
    workers = [pid for pid, env in seen.items() if "default_worker" in env["_cmdline"] or "ray::" in env["_cmdline"]]
    assert workers, f"the watcher saw no Ray worker: {[e['_cmdline'][:80] for e in seen.values()]}"
    leaked = {pid: env["_cmdline"][:80] for pid, env in seen.items()
              if any(k in env for k in ("FEDGOV_PASSPHRASE", "FEDGOV_KEK", "FEDGOV_SIGNING_KEY"))}
    assert leaked == {}
