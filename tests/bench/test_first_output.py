"""bench/first_output.py: its clock starts when the command does, and it reads lines and progress as a person
would see them (a live line redrawn in place counts each new count once)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from first_output import Progress, read_timeline, run  # noqa: E402


def test_pieces_are_stamped_when_they_began_not_when_the_next_redraw_ended_them():
    chunks = [(0.5, b"hello\n"), (1.0, b"round 1/2: 0 of 10 nodes replied (0.0 s)"),
              (3.0, b"\r\x1b[2Kround 1/2: 4 of 10 nodes replied (2.0 s)"),
              (3.5, b"\r\x1b[2Kround 1/2: 4 of 10 nodes replied (2.5 s)\r\x1b[2K"),
              (4.0, "round 1/2: 10/10 nodes aggregated \u2026\nround 2/2: 3 of 10 nodes replied (1.0 s)\n".encode())]
    timeline = read_timeline(chunks)
    assert timeline.first_byte == 0.5
    assert [(at, line[:22].strip()) for at, line in timeline.lines] == [
        (0.5, "hello"), (1.0, "round 1/2: 0 of 10 nod"), (3.0, "round 1/2: 4 of 10 nod"),
        (3.5, "round 1/2: 4 of 10 nod"), (4.0, "round 1/2: 10/10 nodes"), (4.0, "round 2/2: 3 of 10 nod")]
    assert timeline.progress == [Progress(1.0, "round 1/2", 0, 10), Progress(3.0, "round 1/2", 4, 10),
                                 Progress(4.0, "round 2/2", 3, 10)]  # the unchanged redraw counts once


def test_a_multibyte_character_split_between_chunks_is_read_whole():
    text = "round 1/1 SecAgg+ setup: 2 of 3 nodes replied (3.0 s) \u2026\n".encode()
    timeline = read_timeline([(0.1, text[:-3]), (0.2, text[-3:])])
    assert timeline.lines == [(0.1, text.decode().strip())]
    assert timeline.progress == [Progress(0.1, "round 1/1 SecAgg+ setup", 2, 3)]


def _command(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_the_first_byte_is_timed_from_the_start_of_the_command_through_a_pipe_and_a_terminal():
    code = "import time, sys; time.sleep(0.3); print('first', flush=True); time.sleep(0.2); print('second')"
    for pty in (False, True):
        timeline = run(_command(code), dict(os.environ), pty)
        assert timeline.returncode == 0
        assert 0.3 <= timeline.first_byte < 5
        assert [line for _, line in timeline.lines] == ["first", "second"]
        assert timeline.lines[1][0] - timeline.lines[0][0] >= 0.15


def test_a_command_that_prints_nothing_has_no_first_byte():
    timeline = run(_command("import sys; sys.exit(3)"), dict(os.environ), False)
    assert timeline.first_byte is None and timeline.returncode == 3
