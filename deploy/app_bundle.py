"""fedgov's app bundle (Flower FAB): what a coordinator sends and what a site approves by its SHA-256.

Flower builds the bundle deterministically from the app's directory (fixed dates, sorted
paths), so the coordinator and every site compute the same hash from the same release:
`fedgov app hash` prints it, the site lists it in its policy's `app_hashes`, and the node's
gatekeeper recomputes it from the bytes it receives.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fedgov.settings import APP_DIR


def build_bundle(app_dir: Path = APP_DIR) -> bytes:
    """The app bundle's bytes, built by Flower from `app_dir` (the repository: it is the Flower app)."""
    from flwr.cli.build import build_fab_from_disk

    return build_fab_from_disk(app_dir)


def bundle_sha256(app_dir: Path = APP_DIR) -> str:
    return hashlib.sha256(build_bundle(app_dir)).hexdigest()
