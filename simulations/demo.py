"""The quick-start demo: a governed, simulated federation on the embedded defaults.

It makes the workspace (`./.fedgov`, SQLite) on first use, grants consent to the ten
demo nodes, trains 3 rounds of FedAvg on breast-cancer, then prints what the ledger
holds and the result of `fedgov audit verify`.
"""

from __future__ import annotations

import getpass
import os
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fedgov.settings import RunSettings
from governance.keystore import ENV_PASSPHRASE
from simulations.cli import print_summary
from simulations.runner import Governance, Resources, run_simulation

DEMO_PASSPHRASE = "fedgov-demo-passphrase"
DEMO_PURPOSE = "demo: breast-cancer screening model"


def ledger_summary(workspace: Path, run_id: str | None = None) -> Table:
    """Entry counts by type, for the whole ledger or one run."""
    from governance.ledger import Ledger
    from governance.workspace import Workspace

    with Ledger.open_readonly(Workspace.discover(workspace)) as ledger:
        counts = Counter(e.entry_type for e in ledger.query(run_id=run_id))
    table = Table(title=f"ledger entries of run {run_id}" if run_id else "ledger entries")
    table.add_column("entry type")
    table.add_column("count", justify="right")
    for entry_type, count in sorted(counts.items()):
        table.add_row(entry_type, str(count))
    return table


def run_demo(out: Path = Path("fedgov-runs/demo")) -> None:
    """10 IID nodes, 3 rounds of FedAvg on breast-cancer, governed, on the CPU."""
    from governance.ledger.verify import verify_ledger
    from governance.workspace import Workspace

    console = Console()
    if not os.environ.get(ENV_PASSPHRASE):
        os.environ[ENV_PASSPHRASE] = DEMO_PASSPHRASE
        console.print(f"[yellow]demo: {ENV_PASSPHRASE} is not set; using the demo passphrase "
                      "(never use it for real data)[/]")
    settings = RunSettings.from_run_config({"num-server-rounds": 3, "dataset": "breast-cancer",
                                            "num-partitions": 10, "purpose": DEMO_PURPOSE,
                                            "operator": getpass.getuser()})
    result = run_simulation(settings, Resources(), out, governance=Governance())
    print_summary(result, console)
    workspace = Workspace.discover()
    console.print(ledger_summary(workspace.path, result["run_id"]))
    report = verify_ledger(workspace)
    console.print(f"fedgov audit verify: checked {report.entries} entries, {report.checkpoints} checkpoints, "
                  f"root {report.root_hex}")
    console.print(f"run directory: {out}   workspace: {workspace.path}")
