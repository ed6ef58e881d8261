"""`fedgov node join` on loopback: the node's SuperNode and gatekeeper together run what its site approved,
refuse to start on a broken node directory, and leave nothing behind when stopped."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from client.site import site_file_text
from fedgov.datasets import load_split
from fedgov.local_data import schema_for, write_csv
from governance.ledger import create_workspace
from tests.conftest import processes_marked
from tests.deploy.superlink import free_port, running_superlink
from tests.deploy.test_gatekeeper_loopback import _fab, _run
from tests.fedgov_command import MARK_VARIABLE, PASSPHRASE, fedgov_argv, fedgov_env, run_fedgov

pytestmark = pytest.mark.timeout(240)


def site_file(node: Path, approved: list[str], purposes: tuple[str, ...] = ("triage model",)) -> None:
    """Fill the node's site file: its policy, and 40 rows of breast-cancer as its own CSV."""
    pool, _ = load_split("breast-cancer", 42)
    schema = schema_for("breast-cancer")
    write_csv(node / "data.csv", type(pool)(pool.name, pool.x[:40], pool.y[:40], 2), schema)
    (node / "policy.toml").write_text(site_file_text(list(purposes), approved, schema, max_rounds=10,
                                                     max_update_bytes=10_000_000))


def test_a_joined_node_runs_what_its_site_approved_and_stops_cleanly(tmp_path: Path):
    with running_superlink(tmp_path / "coordinator") as link:
        node = tmp_path / "radiology"
        assert run_fedgov("node", "init", "radiology", "--out", str(node)).returncode == 0
        ws = create_workspace(tmp_path / "ws" / ".fedgov", PASSPHRASE)
        assert run_fedgov("node", "register", str(node / "registration.json"), "--team", "radiology", "--superlink",
                          link.address, "--ca", str(link.ca), "--workspace", str(ws.path)).returncode == 0
        site_file(node, [hashlib.sha256(_fab()).hexdigest()])
        mark = f"join-{uuid.uuid4().hex}"
        out = open(tmp_path / "join.out", "w")
        joined = subprocess.Popen(fedgov_argv("node", "join", "--dir", str(node), "--superlink", link.address,
                                              "--ca", str(link.ca), "--runtime-port", str(free_port())),
                                  stdout=out, stderr=subprocess.STDOUT, env=fedgov_env({MARK_VARIABLE: mark}))
        try:
            assert _run(link, tmp_path / "result.json") == [{"reply": {"hello": "from the node's approved app"}}]
        finally:
            joined.send_signal(signal.SIGTERM)
            code = joined.wait(30)
            out.close()
        assert code == 143, (tmp_path / "join.out").read_text()[-3000:]
        time.sleep(0.5)
        assert processes_marked(mark) == {}
        assert "node radiology: SuperNode started" in (tmp_path / "join.out").read_text()


def test_a_node_directory_whose_site_file_is_not_filled_in_does_not_join(tmp_path: Path):
    node = tmp_path / "fresh"
    assert run_fedgov("node", "init", "fresh", "--out", str(node)).returncode == 0
    result = run_fedgov("node", "join", "--dir", str(node), "--superlink", "127.0.0.1:1", "--ca", str(node / "x"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {node / 'policy.toml'} [data.schema]: ")
    assert result.stderr.count("\n") == 1


def test_a_directory_that_is_no_node_is_one_line(tmp_path: Path):
    result = run_fedgov("node", "join", "--dir", str(tmp_path), "--superlink", "127.0.0.1:1", "--ca", "ca.crt")
    assert (result.returncode, result.stderr) == (2, f"error: {tmp_path} is not a node directory (No such file or "
                                                     "directory: registration.json); make it with `fedgov node init "
                                                     "ID --out DIR`\n")
