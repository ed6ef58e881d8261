"""The recipes of docs/deployment.md's "Beyond one machine", read from the page itself, so the tests run what it says.

The page writes for a real host (`/srv/fedgov/ws`, `db.example.org`, a role named `fedgov`); a
test replaces those words with its own (`recipe`), in the order given, and nothing else.
"""

from __future__ import annotations

import re
import shlex

from tests.conftest import REPO

PAGE = REPO / "docs" / "deployment.md"
SECTION = "## Beyond one machine"
INSTALLED = "/opt/fedgov/.venv/bin/fedgov"  # where the page installs fedgov


def section() -> str:
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(f"\n{SECTION}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def blocks(language: str) -> list[str]:
    """The fenced code blocks of the section in `language`, in page order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", section(), flags=re.S | re.M)


def block_with(language: str, words: str) -> str:
    """The one block in `language` holding `words`."""
    found = [b for b in blocks(language) if words in b]
    assert len(found) == 1, f"{len(found)} {language} blocks of {SECTION!r} hold {words!r}"
    return found[0]


def units() -> dict[str, str]:
    """systemd units, by file name: the ini blocks that start with `# /etc/systemd/system/NAME`."""
    found = {}
    for text in blocks("ini"):
        first = text.splitlines()[0]
        if first.startswith("# /etc/systemd/system/"):
            found[first.rsplit("/", 1)[1]] = text
    return found


def directives(unit: str) -> dict[str, list[str]]:
    """`Key=value` lines of a unit (a key may repeat)."""
    found: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def exec_start(unit: str) -> list[str]:
    """The unit's ExecStart as an argument vector."""
    (line,) = directives(unit)["ExecStart"]
    return shlex.split(line)


def recipe(language: str, marker: str, words: list[tuple[str, str]]) -> str:
    """The block in `language` holding `marker`, with each of `words` (old, new) that it holds replaced, in order."""
    block = block_with(language, marker)
    for old, new in words:
        block = block.replace(old, new)
    return block


def shell_lines(block: str) -> list[list[str]]:
    """Each command of a bash block (continuation lines joined, comments dropped), split as the shell would."""
    lines = (shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines())
    return [line for line in lines if line]
