"""One error for a query naming what the evidence never recorded: a typo is not an empty answer.

For a compliance officer "0 results" reads as "nothing affected", so a node, run, team, type or
purpose that names nothing must be an error that shows what does exist and what comes closest.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from governance.errors import UsageError

SAMPLE = 8


def unknown_name(option: str, value: str, known: Iterable[str], where: str = "this ledger",
                 says: str | None = None) -> UsageError:
    """The usage error for `option value` naming nothing in `known`: a sample of what is known, then the closest."""
    names = sorted(set(known))
    close = difflib.get_close_matches(value, names, n=3, cutoff=0.6)
    sample = ", ".join(names[:SAMPLE]) + (", …" if len(names) > SAMPLE else "")
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    says = says or f"names nothing {where} has recorded"
    return UsageError(f"{option} {value!r} {says} (it knows: {sample or 'none'}{hint})")
