"""The hash of the app code that ran, for the run's lineage record.

Deployed from a Flower app bundle, Flower's own FAB hash names the code. In simulation
there is no bundle, so fedgov hashes the package files: SHA-256 over the sorted lines
`<sha256 of file>  <path relative to the app root>` of every `.py` file under the app's
packages plus `pyproject.toml` (the same form as `sha256sum`, so it can be redone by hand).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGES = ("client", "fedgov", "governance", "server", "simulations")


def app_code_hash(app_dir: Path) -> str:
    lines = []
    files = [app_dir / "pyproject.toml", *(p for pkg in PACKAGES for p in (app_dir / pkg).rglob("*.py"))]
    for path in files:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(app_dir).as_posix()}\n")
    return hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()
