"""Print rows as a rich table for people, or JSON / CSV for scripts."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Sequence

import typer

from governance.cli.options import Format


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def emit(rows: Sequence[dict[str, Any]], fmt: Format, columns: Sequence[str], title: str) -> None:
    """One listing, in the format asked for; JSON keeps every field, the others `columns`."""
    if fmt is Format.json:
        typer.echo(json.dumps(list(rows), indent=2, sort_keys=True))
        return
    if fmt is Format.csv:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
        typer.echo(out.getvalue(), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    Console().print(table)
