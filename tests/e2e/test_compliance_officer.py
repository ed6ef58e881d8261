"""The compliance officer's side, end to end (issue 11's acceptance): a governed simulated run, then an
auditor who queries it, is recorded doing so, exports a bundle that verifies offline, and an operator
who cannot read what nodes said.

One real Flower run (4 nodes x 2 rounds) with an auditor and an operator identity registered first,
so its replies are sealed; every step after it is the `fedgov` command a person types.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fedgov_command import run_fedgov
from tests.governance.bundle_tamper_vectors import (BundleTamperCase, attacked_bundle, drop_entry, edit_entry,
                                                    forge_checkpoint, read_members, set_digest, swap_proofs)

pytestmark = pytest.mark.timeout(600)

VERIFY = Path(__file__).resolve().parents[2] / "governance" / "verify"
IDENTITY_PASSPHRASE = "officer-passphrase"
NODE = "sim-0001"


class Officer:
    """A workspace with an auditor and an operator identity, and one governed run recorded in it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ids = tmp / "ids"
        self.ids.mkdir()
        self.env = {"FLWR_HOME": str(tmp / "flwr"), "FEDGOV_HOME": str(tmp / "workspace"),
                    "FEDGOV_IDENTITY_PASSPHRASE": IDENTITY_PASSPHRASE}
        self.ok("audit", "init")
        for role, name in (("auditor", "auditor-2026"), ("operator", "ops")):
            self.ok("identity", "create", "--role", role, "--name", name, "--out", str(self.ids))
            self.ok("identity", "add", str(self.ids / f"{name}.pub"), "--actor", "dpo")
        self.ok("sim", "run", "--nodes", "4", "--rounds", "2", "--out", str(tmp / "run"), "--purpose",
                "cancer-screening", "--operator", "alice", "--revoke", "sim-0002@2", timeout=600)
        self.run_id = json.loads((tmp / "run" / "rounds.json").read_text())["run_id"]
        self.auditor = str(self.ids / "auditor-2026.identity")
        self.operator = str(self.ids / "ops.identity")
        self.trusted_key = (tmp / "workspace" / "trusted_keys").read_text(encoding="utf-8").strip()

    def fedgov(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run_fedgov(*args, cwd=self.tmp, env=self.env, timeout=timeout)

    def ok(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = self.fedgov(*args, timeout=timeout)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return done

    def log(self, *args: str) -> list[dict]:
        return json.loads(self.ok("audit", "log", "--format", "json", *args).stdout)


@pytest.fixture(scope="module")
def officer(tmp_path_factory: pytest.TempPathFactory) -> Officer:
    return Officer(tmp_path_factory.mktemp("officer"))


@pytest.fixture(scope="module")
def bundle(officer: Officer) -> Path:
    """The auditor's bundle of the whole ledger, exported after a checkpoint that signs her reads so far."""
    officer.ok("audit", "checkpoint")
    out = officer.tmp / "evidence.zip"
    officer.ok("audit", "export", "--out", str(out), "--identity", officer.auditor)
    return out


@pytest.fixture(scope="module")
def travelling(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding only a copy of governance/verify: the verifier as it travels to a third party."""
    home = tmp_path_factory.mktemp("third-party")
    shutil.copytree(VERIFY, home / "governance" / "verify", ignore=shutil.ignore_patterns("__pycache__"))
    return home


def verify_offline(travelling: Path, bundle: Path, key: str) -> subprocess.CompletedProcess[str]:
    """`python -I -m governance.verify`, in another process that sees the bundle, the key, the verifier and
    `cryptography`, and nothing else of fedgov or of this machine's site-packages."""
    import cryptography

    site = str(Path(cryptography.__file__).parents[1])
    code = ("import sys, runpy; sys.path[:0] = [sys.argv.pop(1), sys.argv.pop(1)]; "
            "sys.argv[0] = 'governance.verify'; runpy.run_module('governance.verify', run_name='__main__')")
    return subprocess.run([sys.executable, "-I", "-S", "-c", code, str(travelling), site, str(bundle),
                           "--trusted-key", key], capture_output=True, text=True, timeout=60, cwd=travelling)


def test_the_auditor_queries_the_rounds_that_used_a_nodes_data(officer: Officer) -> None:
    replies = officer.log("--node", NODE, "--type", "round.reply", "--decrypt", "--identity", officer.auditor)
    assert [(r["run_id"], r["round"]) for r in replies] == [(officer.run_id, 1), (officer.run_id, 2)]
    assert all(r["payload"]["node_id"] == NODE and r["payload"]["dataset_fingerprint"]["digest"] for r in replies)


def test_the_query_itself_is_an_audit_of_audit_entry(officer: Officer) -> None:
    officer.ok("audit", "log", "--node", NODE, "--run", officer.run_id, "--decrypt", "--identity", officer.auditor)
    reads = officer.log("--type", "audit.read", "--decrypt", "--identity", officer.auditor)
    mine = [r["payload"] for r in reads if r["payload"]["filter"].get("node") == NODE
            and r["payload"]["filter"].get("run") == officer.run_id]
    assert len(mine) == 1, reads
    assert mine[0]["command"] == "audit log --decrypt" and mine[0]["read_at"]
    assert mine[0]["reader"]["name"] == "auditor-2026" and mine[0]["reader"]["role"] == "auditor", mine[0]


def test_an_operator_identity_cannot_decrypt_what_nodes_said(officer: Officer) -> None:
    done = officer.fedgov("audit", "log", "--type", "round.reply", "--decrypt", "--identity", officer.operator)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == ("error: role operator may not read round.reply payloads (docs/access-policy.md); read with "
                           "an auditor identity (--identity)\n")


def test_the_operators_passphrase_cannot_decrypt_them_either(officer: Officer) -> None:
    done = officer.fedgov("audit", "log", "--type", "round.reply", "--decrypt")
    assert done.returncode == 1
    assert done.stderr.startswith("error: role operator may not read round.reply payloads")


def test_the_operator_still_reads_what_it_needs_to_run(officer: Officer) -> None:
    consent = officer.log("--type", "consent.granted", "--decrypt", "--identity", officer.operator)
    assert NODE in {r["node_id"] for r in consent}
    assert all(r["payload"]["record"]["purpose"] == "cancer-screening" for r in consent if r["node_id"] == NODE)


def test_the_bundle_verifies_offline_with_only_the_bundle_and_the_public_key(officer: Officer, bundle: Path,
                                                                             travelling: Path) -> None:
    done = verify_offline(travelling, bundle, officer.trusted_key)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout.startswith("verified: ")
    assert "checkpoints, tree size " in done.stdout.splitlines()[0]


ATTACKS = ("edited-entry", "dropped-entry", "swapped-proof", "forged-checkpoint", "edited-manifest")


def _attack(name: str, bundle: Path) -> tuple[BundleTamperCase, list[str]]:
    """The named attack on this bundle, and every line the verifier must fail with."""
    import hashlib

    members = read_members(bundle)
    size = len(members["entries.jsonl"].splitlines())
    newest = len(members["checkpoints.jsonl"].splitlines())
    origin = json.loads(members["meta.json"])["origin"]
    proof = "error: entry seq {}: its inclusion proof does not lead to checkpoint #%d's root (entry altered, or proof swapped)" % newest
    if name == "edited-entry":
        return BundleTamperCase(name, edit_entry(3, True, node_id="sim-0999"), ()), [proof.format(3)]
    if name == "dropped-entry":
        return (BundleTamperCase(name, drop_entry(4), ()),
                [f"error: entry seq 4 is missing (a complete bundle holds every entry up to tree size {size})"])
    if name == "swapped-proof":
        return BundleTamperCase(name, swap_proofs(2, 3), ()), [proof.format(2), proof.format(3)]
    if name == "forged-checkpoint":
        return (BundleTamperCase(name, forge_checkpoint(1), ()),
                [f"error: checkpoint #1: bad signature: no signature by a trusted key named {origin!r}"])
    digest = hashlib.sha256(members["entries.jsonl"]).hexdigest()
    return (BundleTamperCase(name, set_digest("entries.jsonl", "0" * 64), (), fix_manifest=False),
            [f"error: entries.jsonl: SHA-256 {digest} does not match the manifest's {'0' * 64} (file altered or "
             "corrupted)"])


@pytest.mark.parametrize("name", ATTACKS)
def test_every_tampered_bundle_is_rejected_offline_naming_what(officer: Officer, bundle: Path, travelling: Path,
                                                               tmp_path: Path, name: str) -> None:
    case, want = _attack(name, bundle)
    done = verify_offline(travelling, attacked_bundle(bundle, case, tmp_path / f"{name}.zip"), officer.trusted_key)
    assert (done.returncode, done.stdout, done.stderr.splitlines()) == (1, "", want)


def test_a_run_bundle_verifies_and_says_what_a_filtered_bundle_cannot_show(officer: Officer, travelling: Path) -> None:
    out = officer.tmp / "run.zip"
    officer.ok("audit", "export", "--run", officer.run_id, "--out", str(out), "--identity", officer.auditor)
    done = verify_offline(travelling, out, officer.trusted_key)
    assert done.returncode == 0 and done.stdout.startswith("verified: "), done.stderr
    assert f"selection: run {officer.run_id}" in done.stdout


def test_a_report_of_the_run_is_written_with_the_auditors_key(officer: Officer) -> None:
    out = officer.tmp / "report.html"
    done = officer.ok("report", officer.run_id, "--out", str(out), "--identity", officer.auditor)
    assert "ledger verified" in done.stdout
    page = out.read_text(encoding="utf-8")
    assert officer.run_id in page and "cancer-screening" in page and "sealed (auditors only)" not in page


def test_subject_gives_the_same_answer_on_the_workspace_and_on_the_auditors_bundle(officer: Officer) -> None:
    """The auditor exports with her data keys wrapped to herself; the bundle answers as the workspace did (her
    own reads, not yet signed, are not in the bundle, and no answer of `subject` reads them)."""
    on_workspace = officer.ok("audit", "subject", NODE, "--format", "json", "--identity", officer.auditor).stdout
    out = officer.tmp / "wrapped.zip"
    said = officer.ok("audit", "export", "--out", str(out), "--identity", officer.auditor, "--wrap-to",
                      str(officer.ids / "auditor-2026.pub"))
    assert "to auditor-2026 (auditor, " in said.stdout and "will not be able to read" not in said.stderr
    on_bundle = officer.ok("audit", "subject", NODE, "--format", "json", "--bundle", str(out), "--identity",
                           officer.auditor, "--trusted-key", officer.trusted_key)
    assert on_bundle.stdout == on_workspace and on_bundle.stderr == ""  # verified with her own copy of the key
    assert json.loads(on_bundle.stdout)["summary"]["rounds_using_data"] == 2
