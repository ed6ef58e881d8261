"""What identifies a ledger is bound, and the cache of tree nodes is checked and repairable (item 6).

Edits of the meta table and the cache by plain SQL are tamper vectors (tests/data/tamper).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest

from governance.ledger import EntryDraft, Ledger
from governance.verify.bundle import jcs_line
from governance.workspace import Workspace
from tests.fedgov_command import run_fedgov
from tests.governance.attacks import count, fails_with, sql, succeeds
from tests.governance.bundle_tamper_vectors import matches, read_members, write_members


@pytest.fixture
def grown(workspace: Workspace) -> Workspace:
    """40 signed entries: schema 2 stores tree nodes at levels 4 (idx 0, 1) and 5 (idx 0)."""
    with Ledger.open(workspace) as ledger:
        ledger.append([EntryDraft("round.reply", {"i": i}, "node:n1", round=1, node_id="n1") for i in range(39)],
                      sign=True)
    return workspace


def _verify(ws: Workspace) -> list[str]:
    return ["audit", "verify", "--workspace", str(ws.path)]


def test_a_bundle_with_a_changed_ledger_id_fails_verification(grown: Workspace, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.zip"
    succeeds("audit", "export", "--workspace", str(grown.path), "--out", str(bundle))
    members = read_members(bundle)
    meta = json.loads(members["meta.json"])
    new = str(uuid.uuid4())
    members["meta.json"] = jcs_line({**meta, "ledger_id": new, "origin": f"fedgov.ledger/{new}"})
    write_members(bundle, members)
    done = run_fedgov("audit", "verify", "--bundle", str(bundle))
    checkpoints = members["checkpoints.jsonl"].count(b"\n")
    assert done.returncode == 1 and matches((
        *(f"error: checkpoint #{i}: origin '{meta['origin']}' is not this ledger's 'fedgov.ledger/{new}'"
          for i in range(1, checkpoints + 1)),
        f"error: inclusion proofs not checked: the newest checkpoint #{checkpoints} did not verify"), done.stderr), done.stderr


def test_a_corrupted_cache_blocks_signing_until_repaired(grown: Workspace) -> None:
    sql(grown, "UPDATE fedgov_tree_nodes SET hash = zeroblob(32) WHERE level = 5 AND idx = 0")
    with Ledger.open(grown) as ledger:
        ledger.append([EntryDraft("round.reply", {"late": True}, "node:n1")])
    fails_with(["audit", "checkpoint", "--workspace", str(grown.path)], "error: refusing to sign: the stored tree's "
               "root at size 40 is ..., not the ... this workspace signed (entries, or the cache of tree nodes, "
               "rewritten: `fedgov audit verify` tells which); investigate with ...")
    succeeds("audit", "repair-cache", "--actor", "ops", "--workspace", str(grown.path))
    assert succeeds("audit", "verify", "--require-signed", "--workspace", str(grown.path)).startswith(
        "checked 42 entries")


def test_repair_cache_rebuilds_the_cache_records_it_and_touches_no_entry(grown: Workspace) -> None:
    db = sqlite3.connect(grown.sqlite_path)
    entries_before = db.execute("SELECT * FROM fedgov_entries ORDER BY seq").fetchall()
    db.close()
    sql(grown, "UPDATE fedgov_tree_nodes SET hash = zeroblob(32) WHERE level = 4 AND idx = 1",
        "DELETE FROM fedgov_tree_nodes WHERE level = 5")
    out = succeeds("audit", "repair-cache", "--actor", "ops", "--workspace", str(grown.path))
    assert out == ("repaired: 1 altered, 1 missing cached tree node(s) differ from the entries' hashes (level 4 idx 1, "
                   "level 5 idx 0); recorded and signed at tree size 41\n")
    db = sqlite3.connect(grown.sqlite_path)
    entries_after = db.execute("SELECT * FROM fedgov_entries ORDER BY seq").fetchall()
    triggers = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    db.close()
    assert entries_after[:len(entries_before)] == entries_before and len(entries_after) == len(entries_before) + 1
    assert {"fedgov_tree_nodes_no_update", "fedgov_tree_nodes_no_delete"} <= triggers
    with Ledger.open(grown) as ledger:
        record = ledger.read_payload(ledger.query(entry_type="ledger.cache_repaired")[0])
    assert record == {"actor": "ops", "tree_size": 40, "altered": 1, "missing": 1, "extra": 0,
                      "nodes": [[4, 1], [5, 0]]}
    assert succeeds(*_verify(grown)).startswith("checked 41 entries")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        sql_keep_triggers(grown, "DELETE FROM fedgov_tree_nodes")


def test_repair_cache_on_an_intact_cache_changes_nothing(grown: Workspace) -> None:
    before = count(grown, "fedgov_entries")
    out = succeeds("audit", "repair-cache", "--actor", "ops", "--workspace", str(grown.path))
    assert out == "the cache of tree nodes matches the entries: nothing to repair\n"
    assert count(grown, "fedgov_entries") == before


def sql_keep_triggers(ws: Workspace, statement: str) -> None:
    db = sqlite3.connect(ws.sqlite_path)
    try:
        db.execute(statement)
        db.commit()
    finally:
        db.close()
