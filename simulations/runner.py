"""Launch one simulated federation from the CLI and collect its run directory."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from fedgov.settings import RunSettings
from governance.errors import FedgovError, PolicyError, UsageError
from simulations.processes import run_guarded


@dataclass(frozen=True)
class Resources:
    """Flower client resources per virtual node, and an optional Ray cluster."""

    cpus_per_node: float = 1.0
    gpus_per_node: float = 0.0
    ray_address: str | None = None

    def check(self) -> None:
        if self.cpus_per_node <= 0:
            raise UsageError(f"--cpus-per-node must be > 0, got {self.cpus_per_node}")
        if self.gpus_per_node < 0:
            raise UsageError(f"--gpus-per-node must be >= 0, got {self.gpus_per_node}")
        if self.gpus_per_node > 0 and not self.ray_address:
            import torch

            if not torch.cuda.is_available():
                raise UsageError(
                    f"--gpus-per-node {self.gpus_per_node:g} asks for a GPU but none is visible; "
                    "use --gpus-per-node 0, or --ray-address of a Ray cluster with GPUs"
                )


def flower_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for Flower: no telemetry, no update check, its home in the workspace."""
    env = dict(os.environ if base is None else base)
    env.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    env.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    env.setdefault("FLWR_HOME", str(Path.cwd() / ".fedgov" / "flwr-home"))
    return env


def prepare_out_dir(out: Path) -> Path:
    """Create the run directory, or fail in one line when it cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UsageError(f"cannot write to --out {out}: {err.strerror or err}; choose a writable directory") from None
    return out.resolve()


def run_simulation(settings: RunSettings, resources: Resources, out: Path, verbose: bool = False) -> dict[str, Any]:
    """Run the federation in a guarded child process; return the parsed `rounds.json`."""
    settings.check()
    resources.check()
    out_dir = prepare_out_dir(out)
    settings = replace(settings, out_dir=str(out_dir))
    request = {
        "num_nodes": settings.num_partitions,
        "run_config": settings.to_run_config(),
        **asdict(resources),
        "verbose": verbose,
    }
    request_path = out_dir / "request.json"
    request_path.write_text(json.dumps(request, indent=2))
    env = flower_environment()
    Path(env["FLWR_HOME"]).mkdir(parents=True, exist_ok=True)
    failure_path = out_dir / "failure.json"
    failure_path.unlink(missing_ok=True)
    code = run_guarded([sys.executable, "-m", "simulations.engine", str(request_path)], env=env)
    if code != 0:
        raise _failure(code, failure_path)
    rounds = out_dir / "rounds.json"
    if not rounds.exists():
        raise PolicyError(f"the simulation ended without writing {rounds}")
    return json.loads(rounds.read_text())


def _failure(code: int, failure_path: Path) -> FedgovError:
    """The child's own one-line reason where it left one, else its exit code."""
    if failure_path.exists():
        failure = json.loads(failure_path.read_text())
        err: FedgovError = UsageError(failure["error"]) if failure["exit_code"] == 2 else PolicyError(failure["error"])
        return err
    return PolicyError(f"the simulation crashed with exit code {code}; see the output above")
