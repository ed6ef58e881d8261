"""Headless Chromium for tests: a page's layout (`measure`) and a screenshot (`screenshot`), no driver.

Debian's `chromium` (`make chromium` installs it; .ci/run does too). Each call starts its own
browser with a fresh --user-data-dir in a new session, and kills that whole process group when
it ends, so no renderer, zygote or crashpad process outlives the call. Flags as on this project's
machines: without the background-networking ones Chromium keeps dialling out to a closed network.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
         "--mute-audio", "--force-device-scale-factor=1")


def chromium() -> str:
    """The browser's path, or skip the test saying how to get it."""
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if found is None:
        pytest.skip("Debian's chromium is not installed: run `make chromium` (as root), as .ci/run does")
    return found


def run(url: str, *args: str, timeout: float = 60) -> str:
    """Run headless Chromium on `url` to the end; its stdout. The process group is killed whatever happens."""
    with tempfile.TemporaryDirectory(prefix="fedgov-chromium-") as profile:
        proc = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={profile}", *args, url],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # its helpers share the group it leads
            except ProcessLookupError:
                pass
            proc.wait()
            _wait_gone(proc.pid)
        assert proc.returncode == 0, err[-2000:]
        return out


def _wait_gone(pgid: int, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while (alive := leftover(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive, f"chromium left processes behind: {alive}"


def leftover(pgid: int) -> list[int]:
    """Live (not zombie) processes still in a process group, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, _ppid, group = stat.rpartition(")")[2].split()[:3]
            if int(group) == pgid and state != "Z":
                found.append(int(entry.name))
    return found


MEASURE = """<script>
const charts = [...document.querySelectorAll('[data-chart]')].map(e => {
  const r = e.querySelector('svg').getBoundingClientRect();
  return {id: e.dataset.chart, x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height};
});
document.body.setAttribute('data-measured', JSON.stringify({height: document.documentElement.scrollHeight, charts}));
</script>"""


def measure(page: Path, tmp: Path, width: int) -> dict:
    """Where each `[data-chart]` element's SVG lies on the page at this window width, and the page's height.

    A copy of the page gets a measuring script (and loses its Content-Security-Policy, which
    rightly forbids scripts); the layout is the same, since the script adds nothing visible.
    """
    copy = tmp / "measure.html"
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page.read_text(encoding="utf-8"))
    copy.write_text(text.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = run(copy.as_uri(), "--dump-dom", f"--window-size={width},1000")
    found = re.search(r'data-measured="([^"]*)"', dom)
    assert found, "the measuring script did not run"
    return json.loads(html.unescape(found.group(1)))


def screenshot(page: Path, out: Path, width: int, height: int) -> Path:
    """A PNG of the page's top `height` pixels at this window width."""
    run(page.as_uri(), f"--screenshot={out}", f"--window-size={width},{height}")
    assert out.exists(), "chromium wrote no screenshot"
    return out
