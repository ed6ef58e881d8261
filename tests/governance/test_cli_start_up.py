"""`fedgov` imports its whole command tree on every start-up: that must not drag in the heavy stacks.

Each command imports what it needs when it runs, so `fedgov --help` or a typo answers at once;
and the governance core computes, while drawing (rich) belongs to the CLI.
"""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.fedgov_command import run_fedgov

HEAVY = {"torch", "numpy", "flwr", "ray", "sqlalchemy", "cryptography", "governance.ledger.ledger"}


def test_fedgov_starts_without_the_heavy_stacks() -> None:
    """Every module `fedgov --help` imports, as Python's own import-time report lists them."""
    result = run_fedgov("--help", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:") and line.count("|") == 2}
    assert "governance.cli.audit" in imported  # the probe sees the command tree
    assert sorted(HEAVY & imported) == []


def test_lineage_computes_without_rich() -> None:
    probe = "import sys, governance.lineage; print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert ast.literal_eval(result.stdout) == []
