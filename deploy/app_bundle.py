"""fedgov's app bundle (Flower FAB): what a coordinator sends and what a site approves by its SHA-256.

Flower builds the bundle deterministically from the app's directory (fixed dates, sorted
paths), so the coordinator and every site compute the same hash from the same release:
`fedgov app hash` prints it, the site lists it in its policy's `app_hashes`, and the node's
gatekeeper recomputes it from the bytes it receives.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from fedgov.settings import APP_DIR


PLAIN_DIRECTORY = re.compile(r"[A-Za-z0-9._-]+/")  # a .gitignore line naming a directory, no glob, no slash inside


def build_bundle(app_dir: Path = APP_DIR) -> bytes:
    """The app bundle's bytes, built by Flower from `app_dir` (the repository: it is the Flower app).

    The same bytes as Flower's `build_fab_from_disk` (a test holds them to it), without walking
    directories the app's .gitignore drops whole: `.venv` alone is ~41,000 files, 3 s of every
    `fedgov run` on a 2-core machine.
    """
    from flwr.cli.build import build_fab_from_files

    return build_fab_from_files(app_files(app_dir.expanduser().resolve()))[0]


def app_files(root: Path) -> dict[str, Path]:
    """Flower's `collect_files` (every regular file under `root`, no symlink, none resolving outside it),
    except under directories that a plain `name/` line of root's .gitignore names.

    A `name/` pattern drops every file under a directory of that name at any depth, and Flower applies
    the .gitignore before anything else, so those files could never be in the bundle. With a negation
    (`!…`) in the .gitignore nothing is pruned, since a later line could take a file back.
    """
    try:
        lines = [line.strip() for line in (root / ".gitignore").read_text().splitlines()]
    except (OSError, UnicodeDecodeError):
        lines = []
    pruned = set() if any(line.startswith("!") for line in lines) else \
        {line[:-1] for line in lines if PLAIN_DIRECTORY.fullmatch(line) and line not in ("./", "../")}
    files: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [name for name in dirnames if name not in pruned]
        for filename in filenames:
            path = Path(dirpath) / filename
            if path.is_symlink() or not path.resolve().is_relative_to(root):
                continue
            files[path.relative_to(root).as_posix()] = path
    return files


def bundle_sha256(app_dir: Path = APP_DIR) -> str:
    return hashlib.sha256(build_bundle(app_dir)).hexdigest()
