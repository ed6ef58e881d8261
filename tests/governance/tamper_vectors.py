"""The tamper vectors of tests/data/tamper: attacks kept as data, read the one way both verifiers' tests read them.

Each case is a folder: `attack.sql`, run on a copy of the good ledger built here with the
append-only triggers dropped, and `want.txt`, the one line `fedgov audit verify` must then
fail with. The format is in tests/data/tamper/README.md.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from governance.ledger import EntryDraft, Ledger, create_workspace
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE
from tests.governance.attacks import sql_script

VECTORS = Path(__file__).resolve().parents[1] / "data" / "tamper"
ROUNDS, PER_ROUND = 3, 12  # checkpoints #1..#4 at tree sizes 1, 13, 25, 37


@dataclass(frozen=True)
class TamperCase:
    name: str
    attack: str  # SQL statements
    want: str  # the one stderr line; `...` stands for what differs from run to run
    stranger_accepts: bool  # the spec's verifier, given the same evidence, cannot tell (the file says why)


def tamper_cases() -> list[TamperCase]:
    """Every case folder, by name."""
    return [TamperCase(folder.name, (folder / "attack.sql").read_text(encoding="utf-8"),
                       (folder / "want.txt").read_text(encoding="utf-8").rstrip("\n"),
                       (folder / "stranger-accepts.txt").exists())
            for folder in sorted(VECTORS.iterdir()) if folder.is_dir()]


def build_good_ledger(path: Path) -> Workspace:
    """The ledger every case starts from: genesis (checkpoint #1), then three rounds of 12 `round.reply`
    entries (run r1, nodes n0..n11), each closed by a checkpoint; tree nodes cached at levels 4 and 5."""
    ws = create_workspace(path, PASSPHRASE)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        for r in range(ROUNDS):
            ledger.append([EntryDraft("round.reply", {"i": i}, f"node:n{i}", run_id="r1", round=r, node_id=f"n{i}")
                           for i in range(PER_ROUND)])
            ledger.checkpoint()
    return ws


def attacked_copy(good: Workspace, case: TamperCase, path: Path) -> Workspace:
    """A copy of the good workspace at `path`, with the case's attack made on its database."""
    ws = Workspace(path)
    shutil.copytree(good.path, ws.path)
    sql_script(ws, case.attack)
    return ws
