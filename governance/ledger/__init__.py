"""The governance ledger: append-only, encrypted at rest, Merkle-proved, checkpoint-signed."""

from governance.ledger.entry import Entry, EntryDraft
from governance.ledger.envelope import KeyDestroyedError
from governance.ledger.ledger import Ledger

__all__ = ["Entry", "EntryDraft", "KeyDestroyedError", "Ledger"]
