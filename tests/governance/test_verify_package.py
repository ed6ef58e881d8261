"""governance/verify/ stands alone: the standard library and `cryptography` only, and short enough to read.

An auditor reads this package, and only this package, to trust a ledger or a bundle, so
it must not reach into the rest of fedgov or a third-party library, and must not grow.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from governance import consent
from governance.verify import selection

VERIFY = Path(__file__).resolve().parents[2] / "governance" / "verify"
# Issue 9 aims at 600 lines; what the package must hold (RFC 9162 checks, signed notes,
# JCS, leaf encoding, the row verifier, the bundle reader and the selection re-draw, all
# with the writer's exact failure lines) comes to this. Growing past it is a decision.
# +186 (issue 11): C2SP tlog-cosignature checks, so an auditor can require a witness's cosignature.
# +375 (issue 11): the verifier travels with evidence bundles v3: the zip and manifest reader, proof lines,
# bundle checks that report every failure (bundle_check.py), `python -m governance.verify` and the readers of
# its arguments (inputs.py, moved here from the CLI so both entry points share them).
# +77 (issue 11): `python -m governance.verify --require-cosigned-by`: the witness-key parser and the bundle's
# cosignature check moved here from the CLI (bundle_cosigned.py), so both entry points run the same code.
# +3: a zip member that does not fit in memory is a named refusal (the attacker review's zip bomb).
# +58 (issue 13): the row loop puts a row together from the encoder's cached parts without a call per row (the
# verify floor target), and the checks before and after the rows, and a subtree added whole (`append_subtree`,
# `root_of`), are shared with governance/ledger/subtrees.py, which folds ranges verified by several processes.
# +8 (issue 13): `LeafEncoder.parts`, so the ledger's bulk writer takes a leaf's shared parts from the encoder
# instead of cutting them out of a whole leaf it built for the purpose (with the round's type check, before the cache).
LINE_BUDGET = 1782

# Run in a fresh interpreter: a meta-path finder refuses every import that is not the
# standard library, `cryptography` or governance.verify, unless the stdlib or cryptography
# asks for it themselves (`copy` tries Jython's `org`, cryptography loads its bindings).
GUARDED_IMPORT = r"""
import importlib, pkgutil, sys

refused = []

def top(name):
    return name.partition(".")[0]

class OnlyStdlibAndCryptography:
    def find_spec(self, name, path=None, target=None):
        if top(name) in sys.stdlib_module_names or top(name) == "cryptography" or name == "governance" \
                or name == "governance.verify" or name.startswith("governance.verify."):
            return None
        frame = sys._getframe(1)
        while top(frame.f_globals.get("__name__", "")) == "importlib":
            frame = frame.f_back
        importer = top(frame.f_globals.get("__name__", ""))
        if importer in sys.stdlib_module_names or importer == "cryptography":
            return None
        refused.append(name)
        raise ModuleNotFoundError(f"governance.verify imports {name!r}")

sys.meta_path.insert(0, OnlyStdlibAndCryptography())
import governance.verify
names = sorted(m.name for m in pkgutil.iter_modules(governance.verify.__path__))
for name in names:
    importlib.import_module(f"governance.verify.{name}")
assert not refused, refused
print(" ".join(names))
"""


def _modules() -> list[Path]:
    return sorted(VERIFY.glob("*.py"))


def test_every_module_imports_with_only_the_stdlib_and_cryptography() -> None:
    done = subprocess.run([sys.executable, "-c", GUARDED_IMPORT], capture_output=True, text=True, timeout=120,
                          cwd=VERIFY.parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == sorted(p.stem for p in _modules() if p.stem != "__init__")


def test_no_import_statement_reaches_outside_the_stdlib_and_cryptography() -> None:
    """Also the imports inside functions, which importing the modules does not run."""
    outside = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else ["governance.verify"]
            else:
                continue
            outside += [f"{path.name}:{node.lineno} {n}" for n in names
                        if n.partition(".")[0] not in (*sys.stdlib_module_names, "cryptography")
                        and n != "governance.verify" and not n.startswith("governance.verify.")]
    assert not outside


def test_the_package_stays_within_its_line_budget() -> None:
    lines = {path.name: path.read_bytes().count(b"\n") for path in _modules()}  # as `wc -l` counts
    assert sum(lines.values()) <= LINE_BUDGET, lines


def test_the_draw_reads_the_consent_states_governance_writes() -> None:
    assert (selection.VALID, selection.NO_CONSENT) == (consent.VALID, consent.NO_CONSENT)
