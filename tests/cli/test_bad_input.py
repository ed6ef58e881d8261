"""`fedgov sim run` refuses bad input with one clear line, a non-zero exit, no traceback."""

from pathlib import Path

import pytest


def assert_one_line_error(result, *needles: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("args,needles", [
    (["--dataset", "mnist"], ["unknown dataset 'mnist'", "breast-cancer"]),
    (["--strategy", "fedsgd"], ["unknown strategy 'fedsgd'"]),
    (["--partition", "shards"], ["unknown partition 'shards'"]),
    (["--nodes", "1"], ["--nodes 1 is below the minimum of 2"]),
    (["--partition", "dirichlet", "--alpha", "0"], ["--alpha must be a finite number > 0"]),
    (["--partition", "dirichlet", "--alpha", "-0.5"], ["--alpha must be a finite number > 0"]),
    (["--fraction", "0"], ["--fraction must be in (0, 1]"]),
    (["--fraction", "1.5"], ["--fraction must be in (0, 1]"]),
    (["--faults", "2:explode"], ["bad fault '2:explode'"]),
    (["--dp", "local"], ["unknown dp mode 'local'"]),
    (["--dp", "server-fixed", "--strategy", "krum"], ["--dp server-fixed needs an averaging strategy"]),
    (["--dp", "server-fixed", "--privacy-budgets", "sim-0001"], ["bad privacy budget 'sim-0001'"]),
    (["--privacy-max-epsilon", "3"], ["privacy budgets are spent only under differential privacy"]),
])
def test_bad_option_is_one_clear_line(fedgov, tmp_path, args, needles):
    result = fedgov("sim", "run", "--out", str(tmp_path / "run"), *args)
    assert result.returncode == 2
    assert_one_line_error(result, *needles)


def test_unwritable_out_is_one_clear_line(fedgov, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = fedgov("sim", "run", "--out", str(blocker / "run"))
    assert result.returncode == 2
    assert_one_line_error(result, "cannot write to --out", "choose a writable directory")


def test_bad_input_writes_no_run_directory(fedgov, tmp_path):
    fedgov("sim", "run", "--out", str(tmp_path / "run"), "--dataset", "mnist")
    assert not (tmp_path / "run").exists()


def test_help_describes_every_option(fedgov):
    result = fedgov("sim", "run", "--help")
    assert result.returncode == 0
    for option in ("--nodes", "--rounds", "--dataset", "--partition", "--alpha", "--strategy",
                   "--fraction", "--seed", "--gpus-per-node", "--cpus-per-node", "--out", "--ray-address"):
        assert option in result.stdout


def test_root_help_lists_the_groups(fedgov):
    result = fedgov("--help")
    assert result.returncode == 0
    assert "sim" in result.stdout and "demo" in result.stdout


def test_a_run_without_workspace_or_passphrase_is_one_clear_line(fedgov, tmp_path):
    result = fedgov("sim", "run", "--out", str(tmp_path / "run"), env={"FEDGOV_PASSPHRASE": ""})
    assert result.returncode == 2
    assert_one_line_error(result, "no fedgov workspace at", "run `fedgov audit init`, or set FEDGOV_PASSPHRASE")


def test_a_run_with_a_wrong_passphrase_is_one_clear_line_and_writes_nothing(fedgov, tmp_path):
    assert fedgov("audit", "init").returncode == 0  # the workspace of this test, under the test passphrase
    result = fedgov("sim", "run", "--out", str(tmp_path / "run"), env={"FEDGOV_PASSPHRASE": "not it"})
    assert result.returncode == 2
    assert_one_line_error(result, "passphrase")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,needles", [
    (["--cpus-per-node", "nan"], ["--cpus-per-node must be a number in (0, 1024], got nan"]),
    (["--gpus-per-node", "nan"], ["--gpus-per-node must be a number in [0, 64], got nan"]),
    (["--cpus-per-node", "inf"], ["--cpus-per-node must be a number in (0, 1024], got inf"]),
    (["--alpha", "inf"], ["--alpha must be a finite number > 0 (Dirichlet concentration), got inf"]),
    (["--seed", "1000000000000000000000000000000"], ["--seed must be a whole number from 0 to 4294967295"]),
    (["--seed", "-1"], ["--seed must be a whole number from 0 to 4294967295"]),
    (["--nodes", "1000000000"], ["--nodes must be between 1 and 100000"]),
    (["--ray-address", "127.0.0.1:9"], ["no Ray cluster answers at --ray-address 127.0.0.1:9", "within 2 s"]),
    (["--ray-address", "nowhere"], ["--ray-address 'nowhere' is not HOST:PORT"]),
])
def test_every_option_is_checked_before_anything_is_written(fedgov, tmp_path, args, needles):
    """The issue's cases: each used to fail only after the run had started, or hang."""
    import os
    import time

    start = time.monotonic()
    result = fedgov("sim", "run", "--out", str(tmp_path / "run"), *args)
    assert result.returncode == 2
    assert_one_line_error(result, *needles)
    assert time.monotonic() - start < 30
    assert not Path(os.environ["FEDGOV_HOME"]).exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,needle", [
    (["sim", "run", "--seed", "1e30"], "error: Invalid value for '--seed': '1e30' is not a valid integer. "
                                        "(see `fedgov sim run --help`)"),
    (["audit", "shred"], "error: Missing argument 'SCOPE'. (see `fedgov audit shred --help`)"),
    (["no-such-group"], "error: No such command 'no-such-group'. (see `fedgov --help`)"),
])
def test_a_bad_option_or_argument_is_one_line_with_where_to_look(fedgov, args, needle):
    result = fedgov(*args)
    assert result.returncode == 2 and result.stderr == needle + "\n"


def test_version_prints_the_installed_release(fedgov):
    import tomllib

    from tests.conftest import REPO

    release = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    result = fedgov("--version")
    assert result.returncode == 0 and result.stdout == f"fedgov {release}\n"


@pytest.mark.parametrize("args,needles", [
    (["--dp", "adaptive"], ["unknown dp mode 'adaptive'"]),
    (["--dp", "client-fixed", "--dp-noise-multiplier", "0"], ["dp-noise-multiplier and dp-clipping-norm must be"]),
])
def test_a_deployed_runs_bad_dp_settings_fail_before_anything_starts(fedgov, tmp_path, args, needles):
    from governance.ledger import create_workspace
    from tests.fedgov_command import PASSPHRASE

    create_workspace(tmp_path / ".fedgov", PASSPHRASE)
    result = fedgov("run", "--purpose", "screening", "--workspace", str(tmp_path / ".fedgov"), *args)
    assert result.returncode == 2
    assert_one_line_error(result, *needles)


@pytest.mark.parametrize("content", [b"", b"not a certificate\n"])
def test_a_deployed_runs_ca_that_is_no_certificate_is_one_line(fedgov, tmp_path, content):
    from governance.ledger import create_workspace
    from tests.fedgov_command import PASSPHRASE

    create_workspace(tmp_path / ".fedgov", PASSPHRASE)
    ca = tmp_path / "ca.crt"
    ca.write_bytes(content)
    result = fedgov("run", "--purpose", "screening", "--workspace", str(tmp_path / ".fedgov"),
                    "--superlink", "127.0.0.1:1", "--ca", str(ca), "--nodes", "2")
    assert (result.returncode, result.stderr) == (
        2, f"error: the CA certificate {ca} holds no PEM certificate: pass the federation's ca.crt (from "
           "`fedgov certs ca`)\n")
