"""The service recipes of docs/deployment.md ("Beyond one machine"), checked as far as this machine allows.

The systemd units pass `systemd-analyze verify` (when it is installed); their `ExecStart`, and the
container recipe's `fedgov` command lines, parse as fedgov commands with every option known and
every required one given; and the units keep what the page promises of them (stop signal and
exit status, restart, the hardening the page lists, the workspace or node directory writable).
Neither systemd nor Docker is run: see the page for what was checked by hand.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import click
import pytest
import typer

from tests.deploy.deployment_doc import INSTALLED, block_with, blocks, directives, exec_start, shell_lines, units
from tests.fedgov_command import FEDGOV

UNITS = ("fedgov-coordinator.service", "fedgov-node.service")
IMAGE = "fedgov:0.2.0"


def parse_fedgov(args: list[str]) -> click.Context:
    """Parse `fedgov ARGS` as the real command would, without running it: a bad option raises click.UsageError."""
    from cli.commands import app

    command: click.Command = typer.main.get_command(app)
    args = list(args)
    while isinstance(command, click.Group):
        name = args.pop(0)
        command = command.get_command(click.Context(command), name)
        assert command is not None, f"fedgov has no command {name!r}"
    return command.make_context(name, args)


def test_the_page_has_both_units() -> None:
    assert sorted(units()) == sorted(UNITS)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("name", UNITS)
def test_each_unit_passes_systemd_analyze_verify(tmp_path: Path, name: str) -> None:
    unit = units()[name]
    assert INSTALLED in unit
    path = tmp_path / name
    path.write_text(unit.replace(INSTALLED, str(FEDGOV)))  # verify checks that ExecStart's program exists
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)], capture_output=True, text=True,
                          timeout=60)
    # an unknown key or a bad value is only a warning (exit 0) naming the file: any line naming it fails
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if name in line]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr


@pytest.mark.parametrize("name", UNITS)
def test_each_units_exec_start_is_a_command_fedgov_accepts(name: str) -> None:
    argv = exec_start(units()[name])
    assert argv[0] == INSTALLED
    parse_fedgov(argv[1:])


def test_the_coordinators_options_are_the_ones_it_would_run_with() -> None:
    from deploy.coordinator import parse_listen

    params = parse_fedgov(exec_start(units()["fedgov-coordinator.service"])[1:]).params
    assert parse_listen(params["listen"]) == ("0.0.0.0", 9092)
    assert params["certs"] is not None and params["state_dir"] is None


@pytest.mark.parametrize("name, writes", [("fedgov-coordinator.service", "workspace"), ("fedgov-node.service", "node_dir")])
def test_each_unit_keeps_what_the_page_says_of_it(name: str, writes: str) -> None:
    unit = directives(units()[name])
    one = {key: values[-1] for key, values in unit.items()}
    assert one["KillMode"] in ("mixed", "control-group")  # SIGTERM reaches fedgov, which stops its own children
    assert "143" in one["SuccessExitStatus"].split()  # fedgov's exit status after SIGTERM
    assert "2" in one["RestartPreventExitStatus"].split()  # bad input: restarting does not cure it
    assert one["Restart"] == "on-failure"
    assert int(one["TimeoutStopSec"]) > 5  # fedgov gives its children 5 s before SIGKILL
    assert one["NoNewPrivileges"] == "yes" and one["ProtectSystem"] == "strict" and one["PrivateTmp"] == "yes"
    assert one["CapabilityBoundingSet"] == "" and one["UMask"] == "0077"
    assert one["User"] not in ("root", "0")
    # what the service writes lies under a writable path; its program does not
    written = Path(parse_fedgov(exec_start(units()[name])[1:]).params[writes])
    writable = [Path(p) for p in one["ReadWritePaths"].split()]
    assert any(written.is_relative_to(p) for p in writable), (written, writable)
    assert not any(Path(INSTALLED).is_relative_to(p) for p in writable)


def test_the_container_recipes_fedgov_command_lines_parse() -> None:
    dockerfile = block_with("dockerfile", "FROM flwr/base:")
    assert 'ENTRYPOINT ["fedgov"]' in dockerfile
    commands = [line[line.index(IMAGE) + 1:] for block in blocks("bash") for line in shell_lines(block)
                if line[:2] == ["docker", "run"] and IMAGE in line]
    commands += [line[line.index("fedgov") + 1:] for block in blocks("bash") for line in shell_lines(block)
                 if line[:2] == ["docker", "exec"]]
    assert len(commands) >= 3, commands  # audit init, server start, run
    for args in commands:
        parse_fedgov(args)
