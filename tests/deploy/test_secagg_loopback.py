"""SecAgg+ on a real loopback federation: the deployed apps switch by run config, each node's SecAgg+ state
survives between its four messages a round (process isolation pushes the Context back), and the gatekeeper
counts one training instruction per round."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from governance import entry_types as et
from governance.ledger import Ledger
from governance.workspace import Workspace
from tests.deploy.federation import PURPOSE, loopback_federation
from tests.fedgov_command import MARK_VARIABLE, PASSPHRASE, fedgov_argv, fedgov_env

pytestmark = pytest.mark.timeout(420)
NODES = ("alpha", "beta", "gamma")


def test_a_deployed_run_under_secagg_completes_and_records_only_masked_updates(tmp_path: Path):
    with loopback_federation(tmp_path, {name: (PURPOSE,) for name in NODES}) as federation:
        run = subprocess.run(fedgov_argv(*federation.run_args(PURPOSE, 3, 2), "--secagg"), capture_output=True,
                             text=True, env=fedgov_env({**federation.env, MARK_VARIABLE: federation.mark}), timeout=300)
        assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    with Ledger.open(Workspace.discover(tmp_path / "ws"), PASSPHRASE, write=False) as ledger:
        secagg = [ledger.read_payload(e) for e in ledger.query(et.ROUND_SECAGG)]
        replies = [ledger.read_payload(e) for e in ledger.query(et.ROUND_REPLY)]
        aggregated = [ledger.read_payload(e) for e in ledger.query(et.ROUND_AGGREGATED)]
    assert [s["completed"] for s in secagg] == [list(NODES), list(NODES)] and all(not s["dropped"] for s in secagg)
    assert len(replies) == 6 and all("update_digest" not in r and r["secagg"] for r in replies)
    assert [a["output_model_hash"] for a in aggregated] == [s["aggregate_hash"] for s in secagg]
