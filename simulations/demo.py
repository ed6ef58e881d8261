"""The quick-start demo: a simulated federation on the embedded defaults."""

from __future__ import annotations

from pathlib import Path

from fedgov.settings import RunSettings
from simulations.cli import print_summary
from simulations.runner import Resources, run_simulation


def run_demo(out: Path = Path("fedgov-runs/demo")) -> None:
    """10 IID nodes, 3 rounds of FedAvg on breast-cancer, on the CPU."""
    settings = RunSettings(num_server_rounds=3, dataset="breast-cancer", num_partitions=10)
    result = run_simulation(settings, Resources(), out)
    print_summary(result)
    print(f"run directory: {out}")
