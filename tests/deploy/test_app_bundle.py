"""`fedgov app hash`: the hash a site approves is the hash of the bundle Flower builds, every time."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.fedgov_command import run_fedgov

REPO = Path(__file__).resolve().parents[2]


def test_the_printed_hash_is_the_sha256_of_the_bundle_flower_builds():
    from flwr.cli.build import build_fab_from_disk

    result = run_fedgov("app", "hash")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == hashlib.sha256(build_fab_from_disk(REPO)).hexdigest()


def test_the_bundle_is_built_the_same_way_twice():
    from deploy.app_bundle import build_bundle

    assert build_bundle() == build_bundle()
