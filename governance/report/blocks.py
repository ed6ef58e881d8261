"""The page's HTML building blocks: a section, a table, a value, a number; every section module writes with them.

Cells of `table` are HTML already escaped; `value` and `num` escape what they are given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from governance.report.svg import esc

NOT_RECORDED_HTML = '<span class="nr">not recorded</span>'


def section(sid: str, title: str, *content: str) -> str:
    return f'<section id="{sid}"><h2>{esc(title)}</h2>{"".join(content)}</section>'


def value(v: object) -> str:
    return NOT_RECORDED_HTML if v is None or v == "" else esc(v)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A table of cells already escaped (each cell is HTML)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def num(v: float) -> str:
    return f'<span class="num">{esc(f"{v:.6g}")}</span>'


def not_recorded(sid: str, why: str) -> str:
    """What a section shows when the run recorded none of it: exactly what is missing and why."""
    return f'<p class="placeholder" data-not-recorded="{esc(sid)}">Not recorded: {esc(why)}.</p>'
