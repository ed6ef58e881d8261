"""`fedgov` imports the audit CLI on every start-up: it must not drag in the heavy ledger stack."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_audit_cli_loads_neither_sqlalchemy_nor_cryptography() -> None:
    probe = ("import sys, governance.cli.audit; "
             "print(sorted(m for m in ('sqlalchemy', 'cryptography', 'governance.ledger.ledger') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_ledger_package_still_exports_its_public_names() -> None:
    from governance.ledger import Entry, EntryDraft, KeyDestroyedError, Ledger

    assert Ledger.open and EntryDraft and Entry and issubclass(KeyDestroyedError, Exception)
