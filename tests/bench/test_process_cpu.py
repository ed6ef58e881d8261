"""bench/process_cpu.py: it finds CPU spent by processes under the command, in a session of their own (as Ray's
daemonised workers are), and names each kind of process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "process_cpu.py"
BUSY = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"


def test_the_cpu_of_a_process_in_a_session_of_its_own_is_counted_under_its_module(tmp_path: Path):
    (tmp_path / "spin_a_while.py").write_text(BUSY)
    launcher = ("import subprocess, sys\n"
                f"subprocess.Popen([sys.executable, '-m', 'spin_a_while'], cwd={str(tmp_path)!r}, "
                "start_new_session=True).wait()\n")
    done = subprocess.run([sys.executable, str(SCRIPT), "--", sys.executable, "-c", launcher], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [spent] = [float(m.group(1)) for m in re.finditer(r"^\s*([\d.]+) s\s+1\s+python -m spin_a_while$",
                                                      done.stdout, re.M)]
    assert 0.3 <= spent <= 1.0, done.stdout
