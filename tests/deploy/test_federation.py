"""A real federation on loopback, driven by the commands a person types: a coordinator (`fedgov server start`),
three team nodes (`fedgov node init`, `register`, `consent grant`, `node join`), each with its own CSV, and a
governed run (`fedgov run`). Two nodes train; the third's own policy forbids the run's purpose, and its refusal
is in the ledger. Afterwards the ledger verifies and nothing is left running."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance import entry_types as et
from governance.ledger import Ledger
from governance.workspace import Workspace
from tests.deploy.federation import PURPOSE, loopback_federation
from tests.fedgov_command import PASSPHRASE, run_fedgov

pytestmark = pytest.mark.timeout(420)
NODES = {"radiology": (PURPOSE,), "cardiology": (PURPOSE,), "marketing-dept": ("marketing",)}


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory):
    with loopback_federation(tmp_path_factory.mktemp("federation"), NODES) as federation:
        run = run_fedgov(*federation.run_args(PURPOSE, 3, 2), "--wait", "120", env=federation.env, timeout=360)
        refused = run_fedgov(*federation.run_args("marketing", 3, 1), env=federation.env, timeout=240)
        yield federation.root, run, refused


def _ledger(root: Path) -> Ledger:
    return Ledger.open(Workspace.discover(root / "ws"), PASSPHRASE, write=False)


def test_the_run_completes_and_says_so(federation):
    _, run, _ = federation
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.stdout.splitlines()[-1].endswith("completed")


def test_each_consenting_node_that_allows_the_purpose_sent_a_signed_update_every_round(federation):
    root, _, _ = federation
    with _ledger(root) as ledger:
        replies = [ledger.read_payload(e) for e in ledger.query(et.ROUND_REPLY)]
    by_node = sorted(r["node_id"] for r in replies)
    assert by_node == ["cardiology", "cardiology", "radiology", "radiology"]
    assert all(r["signature"] and r["dataset_fingerprint"]["rows"] == 32 for r in replies)  # 80 % of 40 own rows


def test_the_node_whose_policy_forbids_the_purpose_refused_and_the_refusal_is_recorded(federation):
    root, _, _ = federation
    with _ledger(root) as ledger:
        rejected = [ledger.read_payload(e) for e in ledger.query(et.ROUND_REJECTED)]
    assert {r["node_id"] for r in rejected} == {"marketing-dept"}
    assert all("site policy: purpose 'triage model' is not one this site allows" in r["reason"] for r in rejected)


def test_the_ledger_verifies_afterwards(federation):
    root, _, _ = federation
    assert run_fedgov("audit", "verify", "--require-signed", env={"FEDGOV_HOME": str(root / "ws")}).returncode == 0


def test_a_run_no_node_consented_to_fails_in_one_line_with_the_reason(federation):
    _, _, refused = federation
    assert refused.returncode == 1, refused.stdout[-2000:]
    assert refused.stderr.startswith("error: run ") and refused.stderr.count("\n") == 1, refused.stderr
    assert "consent" in refused.stderr, refused.stderr
