"""The governance ledger: append-only, encrypted at rest, Merkle-proved, checkpoint-signed.

The writer's side; what checks it is governance.verify. Names are resolved on first use
(PEP 562), so importing a light submodule such as `governance.ledger.entry` does not
pull in SQLAlchemy and the storage layer.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from governance.ledger.entry import Entry, EntryDraft
    from governance.ledger.envelope import KeyDestroyedError
    from governance.ledger.ledger import Ledger, create_workspace

__all__ = ["Entry", "EntryDraft", "KeyDestroyedError", "Ledger", "create_workspace"]

_HOMES = {"Entry": "governance.ledger.entry", "EntryDraft": "governance.ledger.entry",
          "KeyDestroyedError": "governance.ledger.envelope", "Ledger": "governance.ledger.ledger",
          "create_workspace": "governance.ledger.ledger"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'governance.ledger' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value
