"""The engine starts Ray beside the apps' imports (simulations/engine.py): an import that fails stops Ray again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

from tests.conftest import MARK_VARIABLE, RAY_OR_FLOWER, REPO, processes_marked

SCRIPT = """
import json, sys
import ray
from simulations.engine import start_ray_while_importing
try:
    start_ray_while_importing({"address": "local", "_temp_dir": sys.argv[1], "logging_level": "ERROR"},
                              ["simulations.no_such_app:app"])
except ModuleNotFoundError as err:
    print(json.dumps({"raised": str(err), "ray_initialized": ray.is_initialized()}))
"""


def test_an_app_that_cannot_be_imported_is_raised_with_ray_stopped_and_no_process_left() -> None:
    mark = f"ray-start-{uuid.uuid4().hex}"
    temp_dir = tempfile.mkdtemp(prefix="rs-")  # short: Ray's socket paths under it must fit 107 bytes
    try:
        done = subprocess.run([sys.executable, "-P", "-c", SCRIPT, temp_dir], cwd=REPO, capture_output=True,
                              text=True, timeout=300,
                              env={**os.environ, MARK_VARIABLE: mark, "RAY_USAGE_STATS_ENABLED": "0"})
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout.strip().splitlines()[-1]) == {
            "raised": "No module named 'simulations.no_such_app'", "ray_initialized": False}
        deadline = time.monotonic() + 20
        while processes_marked(mark, RAY_OR_FLOWER) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_marked(mark, RAY_OR_FLOWER) == {}
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
