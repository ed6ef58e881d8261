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


def test_directories_the_gitignore_drops_are_not_walked_and_the_bundle_is_flowers(tmp_path: Path):
    from flwr.cli.build import build_fab_from_disk

    from deploy.app_bundle import app_files, build_bundle

    (tmp_path / "pyproject.toml").write_bytes((REPO / "pyproject.toml").read_bytes())
    packages = ("server", "client", "fedgov", "governance", "simulations", "deploy", "cli")  # its fab-include
    for name in (*(f"{p}/app.py" for p in packages), "junk/deep/x.py", "src/junk/y.py", "kept.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
    (tmp_path / ".gitignore").write_text("junk/\n*.log\n")
    assert sorted(app_files(tmp_path)) == sorted([".gitignore", "kept.md", "pyproject.toml",
                                                  *(f"{p}/app.py" for p in packages)])
    assert build_bundle(tmp_path) == build_fab_from_disk(tmp_path)
    (tmp_path / ".gitignore").write_text("junk/\n!junk/deep/x.py\n")  # a negation: nothing is pruned
    assert "junk/deep/x.py" in app_files(tmp_path)
    assert build_bundle(tmp_path) == build_fab_from_disk(tmp_path)
