"""Running the real `fedgov` command in tests, as a user would: one way, one test passphrase.

Every test that starts `fedgov` starts it from here, so all of them run the same program
(the installed console script, which a test's current directory cannot shadow, as
`python -m` would let it) in the same environment: this process's, without the FEDGOV_*
settings of whoever runs the tests (their FEDGOV_HOME or FEDGOV_DB_URL would point a test at
a real ledger), with the test passphrase, then whatever the test sets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

FEDGOV = Path(sys.executable).parent / "fedgov"
PASSPHRASE = "test-passphrase"

# Every process a test session starts carries this variable (tests/conftest.py sets it), so a
# check for leftover processes finds only its own: the one FEDGOV_* setting that is kept.
MARK_VARIABLE = "FEDGOV_TEST_MARK"


def fedgov_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment `fedgov` runs in: this process's minus FEDGOV_* (but the mark), the test passphrase, `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FEDGOV_") or k == MARK_VARIABLE}
    return {**clean, "FEDGOV_PASSPHRASE": PASSPHRASE, **(env or {})}


def fedgov_argv(*args: str | bytes) -> list[str | bytes]:
    """The command line of `fedgov ARGS`, for a test that starts it in the background."""
    return [str(FEDGOV), *args]


def run_fedgov(*args: str | bytes, cwd: Path | None = None, env: Mapping[str, str] | None = None,
               timeout: float = 60, text: bool = True) -> subprocess.CompletedProcess:
    """Run `fedgov ARGS` to the end and capture its output (as text, or bytes for a test of raw bytes)."""
    return subprocess.run(fedgov_argv(*args), capture_output=True, text=text, cwd=cwd, env=fedgov_env(env),
                          timeout=timeout)
