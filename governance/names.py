"""The grammar of the names people and nodes type: node ids, teams, purposes, operators.

A name is what a compliance officer reads in a listing and an auditor matches across
records, so two names that look the same must be the same. A name is 1 to 128 characters
(a purpose up to 256), with no leading or trailing white space, and no character of the
Unicode categories Cc (controls, newlines), Cf (format: bidi overrides and isolates,
zero-width characters), Cs (surrogates: what undecodable bytes on a command line become),
Zl or Zp (line and paragraph separators). Names are checked where they enter: the CLI, node
registration and run settings; records written before this grammar are still read.
"""

from __future__ import annotations

import unicodedata

from governance.errors import UsageError

MAX_NAME = 128
MAX_PURPOSE = 256
FORBIDDEN_CATEGORIES = {"Cc": "a control character", "Cf": "a format (bidi or zero-width) character",
                        "Cs": "bytes that are not UTF-8", "Zl": "a line separator", "Zp": "a paragraph separator"}


class InvalidNameError(UsageError):
    """A name outside the grammar: it would read like another name, or not at all."""


def check_name(value: object, what: str, limit: int = MAX_NAME) -> str:
    """Return `value` if it is a name by the grammar above, else raise InvalidNameError saying why."""
    if not isinstance(value, str) or not value:
        raise InvalidNameError(f"{what} must not be empty")
    shown = repr(value) if len(value) <= 60 else repr(value[:60]) + "…"
    if len(value) > limit:
        raise InvalidNameError(f"{what} {shown} is longer than {limit} characters")
    if value != value.strip():
        raise InvalidNameError(f"{what} {shown} starts or ends with white space")
    for char in value:
        reason = FORBIDDEN_CATEGORIES.get(unicodedata.category(char))
        if reason:
            raise InvalidNameError(f"{what} {shown} holds {reason} (U+{ord(char):04X}); names may not")
    return value
