"""Where the answers to a compliance question come from: the entries, and a way to read their payloads.

Queries such as `fedgov audit subject` are pure functions over an `EvidenceSource`, so the same
code answers on a live workspace (`LedgerSource`) and on an exported evidence bundle (a source
that reads the bundle's entries and the data keys wrapped to the reader). Two sources that
hold the same entries and can open the same payloads give the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from governance.entry_types import LEGACY_NAMES, stored_names

if TYPE_CHECKING:
    from governance.ledger import Ledger


class EvidenceEntry(Protocol):
    """The plaintext index fields of one entry (governance.ledger.Entry has them)."""

    @property
    def seq(self) -> int: ...
    @property
    def entry_type(self) -> str: ...
    @property
    def timestamp(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def round(self) -> int | None: ...
    @property
    def node_id(self) -> str: ...


class EvidenceSource(Protocol):
    """What a query reads. Implement it for a bundle; `LedgerSource` is the workspace's.

    `entries(types)`: the entries of these dotted types (and their pre-0.2 spellings), in seq
    order. `payload(entry)`: the decrypted payload, or None when the entry's data key was
    destroyed (crypto-shredded): the query then says "erased". Any other failure to read (no
    key for this reader, a tampered ciphertext) raises a FedgovError: a query never guesses.
    `description`: where the evidence comes from, for the report's header.
    """

    description: str

    def entries(self, entry_types: Sequence[str]) -> Sequence[EvidenceEntry]: ...

    def payload(self, entry: Any) -> dict[str, Any] | None: ...


def dotted(entry_type: str) -> str:
    """An entry's type in today's dotted spelling, whatever spelling its row was written with."""
    return LEGACY_NAMES.get(entry_type, entry_type)


def stored_spellings(entry_types: Iterable[str]) -> list[str]:
    """Every stored name under which entries of these types may be found."""
    return sorted({name for t in entry_types for name in stored_names(t)})


class LedgerSource:
    """An open Ledger (with its keys) as an evidence source."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.description = f"workspace {ledger.workspace.path}"

    def entries(self, entry_types: Sequence[str]) -> Sequence[EvidenceEntry]:
        found = self.ledger.query_types(stored_spellings(entry_types))
        self.ledger.prefetch_keys(found)
        return found

    def payload(self, entry: Any) -> dict[str, Any] | None:
        from governance.ledger.envelope import KeyDestroyedError, UnknownDataKeyError

        try:
            return self.ledger.read_payload(entry)
        except UnknownDataKeyError:  # a row fedgov did not write is not an erasure: say so
            raise
        except KeyDestroyedError:
            return None
