"""Signals: a run ended by SIGINT, SIGTERM, `kill -9` or its Ray cluster dying ends whole, and is closed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from governance import entry_types as et
from governance.ledger import Ledger
from governance.workspace import Workspace
from tests.fedgov_command import MARK_VARIABLE, PASSPHRASE, fedgov_argv, fedgov_env, run_fedgov
from tests.conftest import processes_marked

pytestmark = pytest.mark.timeout(600)


class LiveRun:
    """`fedgov sim run` in the background, with a mark of its own on every process it starts."""

    def __init__(self, tmp: Path, until: str = "round 1/500") -> None:
        self.tmp, self.mark = tmp, f"signals-{uuid.uuid4().hex}"
        self.env = {MARK_VARIABLE: self.mark, "FLWR_HOME": str(tmp / "flwr"), "FEDGOV_HOME": str(tmp / "workspace")}
        self.proc = subprocess.Popen(fedgov_argv("sim", "run", "--nodes", "3", "--rounds", "500", "--out",
                                                 str(tmp / "run")), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=fedgov_env(self.env), cwd=tmp)
        first = self.proc.stdout.readline()
        self.run_id = re.match(r"run (\d+): ", first).group(1)
        for line in self.proc.stdout:  # until training is under way
            if line.startswith(until):
                break
        self.err: list[str] = []  # drained all along: a full pipe would stall the run
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True).start()
        [engine] = processes_marked(self.mark, ("simulations.engine",)).values()
        self.scratch = Path(re.search(r"(\S+)/request\.json", engine).group(1))
        assert self.scratch.is_dir() and self.processes()

    def processes(self) -> dict[int, str]:
        return processes_marked(self.mark)

    def wait(self, timeout: float = 60) -> tuple[int, str, float]:
        """(exit code, stderr, seconds it took to exit)."""
        start = time.monotonic()
        self.proc.wait(timeout=timeout)
        took = time.monotonic() - start
        time.sleep(0.2)  # the last lines, from the pipe
        return self.proc.returncode, "".join(self.err), took

    def wait_until_no_process_left(self, seconds: float) -> dict[int, str]:
        deadline = time.monotonic() + seconds
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.processes()

    def fedgov(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_fedgov(*args, cwd=self.tmp, env=self.env, timeout=120)

    def closing(self) -> dict:
        os.environ["FEDGOV_PASSPHRASE"] = PASSPHRASE
        with Ledger.open(Workspace.discover(self.tmp / "workspace"), write=False) as ledger:
            [entry] = ledger.query(et.RUN_FINISHED, run_id=self.run_id)
            return ledger.read_payload(entry)

    def end(self) -> None:
        for pid in self.processes():
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def live_run(tmp_path):
    run = LiveRun(tmp_path)
    yield run
    run.end()


@pytest.mark.parametrize("signals, code", [((signal.SIGTERM,), 143), ((signal.SIGINT,), 130),
                                           ((signal.SIGTERM, signal.SIGINT), 143)],
                         ids=["SIGTERM", "SIGINT", "SIGTERM-then-SIGINT"])
def test_a_signal_ends_the_whole_run_within_seconds_and_records_it_interrupted(live_run, signals, code):
    name = signal.Signals(signals[0]).name  # the first signal decides
    for signum in signals:
        live_run.proc.send_signal(signum)
        time.sleep(0.05)
    returncode, err, took = live_run.wait()
    assert (returncode, err.strip().splitlines()) == (
        code, [f"error: interrupted by {name}; run {live_run.run_id} recorded as interrupted"]), err[-3000:]
    assert took < 15, took
    assert live_run.wait_until_no_process_left(10) == {}
    assert live_run.closing()["status"] == "interrupted"
    assert live_run.closing()["reason"] == f"{name} to fedgov sim run"
    assert not live_run.scratch.exists()
    assert live_run.fedgov("audit", "verify").returncode == 0


def test_kill_9_ends_every_process_and_the_next_writer_closes_the_run_as_abandoned(live_run):
    live_run.proc.kill()
    live_run.wait()
    assert live_run.wait_until_no_process_left(30) == {}  # the engine dies with it, and Ray with the engine
    listing = live_run.fedgov("audit", "log", "--type", "run.finished", "--format", "json")  # a reader closes nothing
    assert (listing.returncode, listing.stdout.strip()) == (0, "[]"), listing.stderr
    granted = live_run.fedgov("consent", "grant", "--node", "sim-0000", "--team", "t", "--purpose", "p",
                              "--data-category", "d", "--notice-version", "1", "--notice-hash", "ab" * 32)
    assert granted.returncode == 0, granted.stderr
    assert live_run.closing()["status"] == "abandoned"
    assert not live_run.scratch.exists()
    assert live_run.fedgov("audit", "verify").returncode == 0


def test_a_dead_engine_is_recorded_as_crashed_and_nothing_of_the_run_is_left(live_run):
    [engine] = processes_marked(live_run.mark, ("simulations.engine",))
    os.kill(engine, signal.SIGKILL)
    returncode, err, took = live_run.wait()
    assert returncode == 1 and took < 15
    assert err.strip().splitlines()[-1] == ("error: the simulation engine was killed by SIGKILL; see the output above; "
                                            f"run {live_run.run_id} recorded as crashed")
    assert live_run.closing()["status"] == "crashed"
    assert live_run.wait_until_no_process_left(15) == {}
    assert not live_run.scratch.exists()


def test_a_run_whose_ray_cluster_dies_fails_within_seconds_and_records_why(tmp_path):
    live_run = LiveRun(tmp_path, until="round 3/500")  # Ray is up: rounds 1 and 2 ran on it
    try:
        [raylet] = processes_marked(live_run.mark, ("raylet/raylet",))
        os.kill(raylet, signal.SIGKILL)
        returncode, err, took = live_run.wait()
        [line] = err.strip().splitlines()[-1:]
        assert returncode == 1 and took < 15
        assert re.fullmatch(r"error: the Ray cluster under this run stopped: its raylet (at \S+:\d+ no longer answers"
                            rf"|\(pid {raylet}\) died); run {live_run.run_id} recorded as crashed", line), line
        assert live_run.closing()["status"] == "crashed"
        assert live_run.closing()["reason"] == line[len("error: "):].split(";")[0]
        assert live_run.wait_until_no_process_left(10) == {}
    finally:
        live_run.end()
