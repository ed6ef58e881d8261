"""Reading one field of a recorded payload, whatever it holds: the monitoring and privacy sections' readers.

A payload was authenticated by the ledger, not validated by this report: a field of the wrong
type reads as absent (None, "" or empty), never as a guess and never as a crash.
"""

from __future__ import annotations

import math
from typing import Any


def text(value: Any) -> str:
    """A string field; None reads as "", anything else as its str()."""
    return value if isinstance(value, str) else "" if value is None else str(value)


def number(value: Any) -> float | None:
    """A finite number, or None (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def integer(value: Any) -> int | None:
    """An int field (a bool is not one), or None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def mapping(value: Any) -> dict[str, Any]:
    """A JSON object field, or {}."""
    return value if isinstance(value, dict) else {}


def names(value: Any) -> list[str]:
    """A list of names (node ids, features), as strings; anything else reads as []."""
    return [text(v) for v in value if isinstance(v, (str, int)) and not isinstance(v, bool)] \
        if isinstance(value, list) else []
