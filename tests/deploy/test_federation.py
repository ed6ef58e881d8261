"""A real federation on loopback, driven by the commands a person types: a coordinator (`fedgov server start`),
three team nodes (`fedgov node init`, `register`, `consent grant`, `node join`), each with its own CSV, and a
governed run (`fedgov run`). Two nodes train; the third's own policy forbids the run's purpose, and its refusal
is in the ledger. Afterwards the ledger verifies and nothing is left running.

The same federation holds the nodes that must not take part (docs/security.md, threats 2 and 12):
- `plain`, registered and consenting like the others, but run as a bare `flower-supernode` (no gatekeeper, no
  fedgov identity): Flower runs fedgov's ClientApp itself, which has no key to sign with; its replies are
  rejected and named in the ledger, and the run completes without it;
- `stranger`, a `flower-supernode` whose auth key was never registered: the SuperLink refuses it;
- `stray`, a node directory never registered, joined with `fedgov node join`: one line, at once.
(That a second SuperNode with a registered key is not called unregistered, so `fedgov node join` retries it, is
checked against a real SuperLink in tests/deploy/test_node_register.py.)
The two unregistered ones are started as soon as the coordinator is up, and have ended before the run starts.

Beside that run, on the same federation, a run under SecAgg+ (its purpose one only the three joined nodes consent to
and allow), started once every node is online: the deployed apps switch by run config, each node's SecAgg+ state survives between its four messages a round
(process isolation pushes the Context back), and the gatekeeper counts one training instruction per round. Each
test reads only its own run's ledger entries, by run id.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.certs import node_auth_keys
from deploy.fleet_proxy import NOT_REGISTERED
from governance import entry_types as et
from governance.ledger import Ledger
from governance.workspace import Workspace
from tests.deploy.federation import PURPOSE, loopback_federation
from tests.fedgov_command import MARK_VARIABLE, PASSPHRASE, fedgov_argv, fedgov_env, run_fedgov

pytestmark = pytest.mark.timeout(420)
SECAGG_PURPOSE = "triage model under secure aggregation"
NODES = {"radiology": (PURPOSE, SECAGG_PURPOSE), "cardiology": (PURPOSE, SECAGG_PURPOSE),
         "marketing-dept": ("marketing", SECAGG_PURPOSE)}
REGISTERED = sorted([*NODES, "plain"])
SECAGG_NODES = sorted(NODES)  # the joined nodes: each has a fedgov identity and allows SECAGG_PURPOSE


@dataclass(frozen=True)
class Ended:
    """A process that was expected to end by itself: its exit status, output and how long it ran."""

    code: int
    stdout: str
    stderr: str
    seconds: float


@dataclass(frozen=True)
class Outcome:
    root: Path
    run: subprocess.CompletedProcess
    refused: subprocess.CompletedProcess
    stranger: Ended
    stray: Ended
    secagg: subprocess.CompletedProcess


class Unregistered:
    """The never-registered `stranger` (a bare flower-supernode) and `stray` (`fedgov node join`), started as soon
    as the coordinator is up; each must end by itself within 60 s (it is killed otherwise, and the test that
    reads it fails)."""

    def start(self, federation) -> None:
        key = federation.root / "stranger" / "stranger.auth"  # a SuperNode key, as `fedgov certs node` makes it
        key.parent.mkdir()
        key.write_bytes(node_auth_keys()[0])
        key.chmod(0o600)
        federation.init_node("stray")
        self.root, self.ended_at, self.timers = federation.root, {}, {}
        started = time.monotonic()
        self.stranger = federation.bare_supernode("stranger")  # its output: stranger.out
        with open(self.root / "stray.out", "w") as out, open(self.root / "stray.err", "w") as err:
            self.stray = subprocess.Popen(fedgov_argv(*federation.join_args("stray")), stdout=out, stderr=err,
                                          env=fedgov_env({**federation.env, MARK_VARIABLE: federation.mark}))
        for name, process in (("stranger", self.stranger), ("stray", self.stray)):
            self.timers[name] = threading.Thread(target=self._time, args=(name, process, started), daemon=True)
            self.timers[name].start()
        federation.ending += [self.stranger, self.stray]

    def _time(self, name: str, process: subprocess.Popen, started: float) -> None:
        process.wait()
        self.ended_at[name] = time.monotonic() - started

    def ended(self, name: str) -> Ended:
        process = getattr(self, name)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self.timers[name].join(5)
        err = self.root / f"{name}.err"
        return Ended(process.returncode, (self.root / f"{name}.out").read_text(),
                     err.read_text() if err.exists() else "", self.ended_at.get(name, float("inf")))


class Background:
    """`fedgov ARGS` started now, its output in files; `done()` waits for it, as `run_fedgov` would have run it."""

    def __init__(self, root: Path, name: str, args: list[str], env: dict[str, str]) -> None:
        self.out, self.err = root / f"{name}.out", root / f"{name}.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen(fedgov_argv(*args), stdout=out, stderr=err, text=True,
                                            env=fedgov_env(env))

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.out.read_text():
            assert self.process.poll() is None and time.monotonic() < deadline, self.out.read_text()[-3000:]
            time.sleep(0.2)

    def done(self, timeout: float) -> subprocess.CompletedProcess:
        self.process.wait(timeout)
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, self.out.read_text(),
                                           self.err.read_text())


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory):
    unregistered = Unregistered()
    with loopback_federation(tmp_path_factory.mktemp("federation"), NODES, bare=("plain",),
                             first=unregistered.start) as federation:
        stranger, stray = unregistered.ended("stranger"), unregistered.ended("stray")
        for name in SECAGG_NODES:
            granted = run_fedgov("consent", "grant", "--node", name, "--team", name, "--purpose", SECAGG_PURPOSE,
                                 "--data-category", "imaging", "--notice-version", "1", "--notice-hash", "a" * 64,
                                 env=federation.env)
            assert granted.returncode == 0, granted.stderr
        run = Background(federation.root, "run", [*federation.run_args(PURPOSE, len(REGISTERED), 2), "--wait", "120"],
                         federation.env)
        # the SecAgg+ run beside it, once every node is online (its own wait counts nodes, not whose they are)
        run.wait_for("nodes online", 150)
        secagg = Background(federation.root, "secagg", [*federation.run_args(SECAGG_PURPOSE, len(SECAGG_NODES), 2),
                                                        "--secagg"], {**federation.env, MARK_VARIABLE: federation.mark})
        run = run.done(360)
        refused = run_fedgov(*federation.run_args("marketing", 3, 1), env=federation.env, timeout=240)
        # 600 s: on a day this machine ran 2.4x slower, the SecAgg+ run beside the test suite took more than 300
        yield Outcome(federation.root, run, refused, stranger, stray, secagg.done(600))


def _ledger(root: Path) -> Ledger:
    return Ledger.open(Workspace.discover(root / "ws"), PASSPHRASE, write=False)


def _payloads(root: Path, entry_type: str, purpose: str = PURPOSE) -> list[dict]:
    """The payloads of `entry_type` of the one run that declared `purpose` (the other runs' entries left out)."""
    with _ledger(root) as ledger:
        [run_id] = [e.run_id for e in ledger.query(et.RUN_STARTED) if ledger.read_payload(e)["purpose"] == purpose]
        return [ledger.read_payload(e) for e in ledger.query(entry_type, run_id=run_id)]


def test_the_run_completes_and_says_so(federation):
    run = federation.run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.stdout.splitlines()[-1].endswith("completed")


def test_each_consenting_node_that_allows_the_purpose_sent_a_signed_update_every_round(federation):
    replies = _payloads(federation.root, et.ROUND_REPLY)
    by_node = sorted(r["node_id"] for r in replies)
    assert by_node == ["cardiology", "cardiology", "radiology", "radiology"]
    assert all(r["signature"] and r["dataset_fingerprint"]["rows"] == 32 for r in replies)  # 80 % of 40 own rows


def test_the_node_whose_policy_forbids_the_purpose_refused_and_the_refusal_is_recorded(federation):
    rejected = [r for r in _payloads(federation.root, et.ROUND_REJECTED) if r["node_id"] == "marketing-dept"]
    assert len(rejected) == 2  # one per round
    assert all("site policy: purpose 'triage model' is not one this site allows" in r["reason"] for r in rejected)


def test_a_plain_supernode_without_fedgov_identity_has_its_replies_rejected_and_named(federation):
    rejected = [r for r in _payloads(federation.root, et.ROUND_REJECTED) if r["node_id"] == "plain"]
    assert len(rejected) == 2, rejected  # selected (it consented) in both rounds, rejected in both
    assert all(r["reason"].startswith("node error ") and "this node has no fedgov identity" in r["reason"]
               for r in rejected), rejected
    aggregated = _payloads(federation.root, et.ROUND_AGGREGATED)
    assert [a["contributors"] for a in aggregated] == [["cardiology", "radiology"]] * 2
    assert {r["node_id"] for r in _payloads(federation.root, et.ROUND_REJECTED)} == {"marketing-dept", "plain"}


def test_an_unregistered_supernode_is_refused_by_the_superlink_and_never_takes_part(federation):
    stranger = federation.stranger
    assert stranger.code == 1 and stranger.seconds < 60, stranger.stdout[-3000:]  # Flower prints 305, exits 1
    assert "Exit Code: 305" in stranger.stdout and "[code: 2004] Failed to activate SuperNode." in stranger.stdout
    assert NOT_REGISTERED in stranger.stdout  # the coordinator's Fleet proxy names the cause
    assert f"{len(REGISTERED)} nodes online: {', '.join(REGISTERED)}" in federation.run.stdout
    selections = _payloads(federation.root, et.ROUND_SELECTION)
    assert len(selections) == 2
    assert all(s["candidates"] == REGISTERED and s["unbound_flower_nodes"] == [] for s in selections), selections


def test_joining_a_node_that_was_never_registered_ends_at_once_in_one_line(federation):
    stray = federation.stray
    assert stray.code == 1 and stray.seconds < 60, stray.stdout[-3000:] + stray.stderr  # a retry: 90 s
    assert stray.stderr == (f"error: node stray: not registered: ask the operator to run `fedgov node register` with "
                            f"{federation.root / 'stray' / 'registration.json'} (the coordinator refused this "
                            "node's key)\n")
    assert "trying again" not in stray.stdout


def test_the_ledger_verifies_afterwards(federation):
    assert run_fedgov("audit", "verify", "--require-signed",
                      env={"FEDGOV_HOME": str(federation.root / "ws")}).returncode == 0


def test_a_deployed_run_under_secagg_completes_and_records_only_masked_updates(federation):
    secagg = federation.secagg
    assert secagg.returncode == 0, (secagg.stdout + secagg.stderr)[-3000:]
    rounds = _payloads(federation.root, et.ROUND_SECAGG, SECAGG_PURPOSE)
    replies = _payloads(federation.root, et.ROUND_REPLY, SECAGG_PURPOSE)
    aggregated = _payloads(federation.root, et.ROUND_AGGREGATED, SECAGG_PURPOSE)
    assert [s["completed"] for s in rounds] == [SECAGG_NODES, SECAGG_NODES] and all(not s["dropped"] for s in rounds)
    assert len(replies) == 6 and all("update_digest" not in r and r["secagg"] for r in replies)
    assert [a["output_model_hash"] for a in aggregated] == [s["aggregate_hash"] for s in rounds]


def test_a_run_no_node_consented_to_fails_in_one_line_with_the_reason(federation):
    refused = federation.refused
    assert refused.returncode == 1, refused.stdout[-2000:]
    assert refused.stderr.startswith("error: run ") and refused.stderr.count("\n") == 1, refused.stderr
    assert "consent" in refused.stderr, refused.stderr


def test_fedgov_run_says_what_it_does_first_and_how_many_nodes_replied_in_each_round(federation):
    """The ServerApp's progress lines reach `fedgov run` through Flower's log stream. Flower's deployed grid
    pulls replies every 3 s, the first time at once, so every wait (a round; under SecAgg+, each of its four
    stages) ends with a line at least a second in, and the last one counts every selected node."""
    import re

    assert federation.run.stdout.startswith(f"preparing a run of 2 rounds on {len(REGISTERED)} nodes: building the "
                                            "app bundle")
    for output, pattern, waits, selected in (
            (federation.run.stdout, r"round (\d)/2", 2, len(REGISTERED)),
            (federation.secagg.stdout, r"round (\d)/2 SecAgg\+ (\w+)", 8, len(SECAGG_NODES))):
        last: dict[tuple, tuple[int, int]] = {}
        for line in output.splitlines():
            match = re.fullmatch(pattern + r": (\d+) of (\d+) nodes replied \(\d+\.\d s\)", line.strip())
            if match:
                *wait, answered, total = match.groups()
                last[tuple(wait)] = (int(answered), int(total))
        assert len(last) == waits, output[-3000:]
        assert all(total == selected for _, total in last.values()), last
    assert all(answered == total for answered, total in last.values()), last  # SecAgg+: every node, every stage
