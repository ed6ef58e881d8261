"""The entries' one secondary index: every query answers as a full filter would, on either index layout.

New ledgers keep one index, (entry_type, run_id, round, node_id): each index costs every append
a B-tree insert. A query that names no type is sent through it once per stored type. Ledgers
made before keep their three indexes and must answer the same.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from governance.errors import VerificationError
from governance.ledger import EntryDraft, Ledger, create_workspace
from governance.ledger.store import TYPE_LED_INDEX
from governance.ledger.verify import verify_ledger
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE

OLDER_INDEXES = ("CREATE INDEX ix_fedgov_entries_run_round_node ON fedgov_entries (run_id, round, node_id)",
                 "CREATE INDEX ix_fedgov_entries_node ON fedgov_entries (node_id)",
                 "CREATE INDEX ix_fedgov_entries_type ON fedgov_entries (entry_type)")
TYPES, RUNS, ROUNDS, NODES = ("consent.granted", "round.reply", "run.started"), ("", "r1", "r2"), (None, 0, 1, 2), \
    ("", "n1", "n2", "n3")


def _fill(ledger: Ledger) -> None:
    """Every combination of type, run, round and node, twice, in two batches (seq order differs from index order)."""
    combos = list(itertools.product(TYPES, RUNS, ROUNDS, NODES))
    for batch in (combos[::-1], combos):
        ledger.append([EntryDraft(t, {"k": i}, f"node:{n}", run_id=r, round=rnd, node_id=n)
                       for i, (t, r, rnd, n) in enumerate(batch)])


def _older_layout(engine: sa.Engine) -> None:
    """Turn a new ledger's index layout into the one ledgers made before this change have."""
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP INDEX {TYPE_LED_INDEX}")
        for statement in OLDER_INDEXES:
            conn.exec_driver_sql(statement)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path) -> Iterator[Workspace]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    yield create_workspace(tmp_path / ".fedgov", PASSPHRASE, db_url=url)


def _index_names(ledger: Ledger) -> set[str]:
    with ledger.store.engine.connect() as conn:
        return {ix["name"] for ix in sa.inspect(conn).get_indexes("fedgov_entries")}


def test_a_new_ledger_indexes_its_entries_once_led_by_type(backend: Workspace) -> None:
    with Ledger.open(backend, PASSPHRASE) as ledger:
        assert _index_names(ledger) == {TYPE_LED_INDEX}


FILTERS = [dict(zip(("entry_type", "run_id", "round", "node_id"), values)) for values in
           [("round.reply", None, None, None), (None, "r1", None, None), (None, "r2", 1, None),
            (None, "r1", 2, "n3"), (None, None, None, "n2"), (None, None, 0, None), (None, "", None, ""),
            ("consent.granted", None, None, "n1"), ("round.reply", "r2", None, None), ("run.started", "r1", 1, "n1"),
            (None, "r9", None, None), (None, None, None, "nobody")]]


@pytest.mark.parametrize("layout", ["new", "older"])
def test_every_query_returns_what_filtering_every_entry_returns(backend: Workspace, layout: str) -> None:
    with Ledger.open(backend, PASSPHRASE) as ledger:
        _fill(ledger)
        if layout == "older":
            _older_layout(ledger.store.engine)
            ledger.store._type_led_index = None  # a process opening an older ledger reads its layout afresh
        everything = ledger.query()
        assert len(everything) == 1 + 2 * len(TYPES) * len(RUNS) * len(ROUNDS) * len(NODES)
        for filters in FILTERS:
            expected = [e.seq for e in everything if all(getattr(e, k) == v for k, v in filters.items()
                                                          if v is not None)]
            assert [e.seq for e in ledger.query(**filters)] == expected, filters
        assert [e.seq for e in ledger.query(run_id="r1", limit=3)] == \
            [e.seq for e in everything if e.run_id == "r1"][:3]
        assert sorted(ledger.distinct("entry_type")) == sorted({"ledger.created", *TYPES})
        assert sorted(ledger.distinct("run_id")) == ["r1", "r2"]
        assert sorted(ledger.distinct("node_id")) == ["n1", "n2", "n3"]
        assert [ledger.holds("node_id", n) for n in ("n3", "n4")] == [True, False]
        assert [ledger.holds("run_id", r) for r in ("r2", "r3")] == [True, False]
        assert [ledger.holds("entry_type", t) for t in ("run.started", "run.ended")] == [True, False]
    assert verify_ledger(backend).entries == len(everything)


def test_a_query_naming_run_round_and_node_seeks_the_index_instead_of_scanning(tmp_path) -> None:
    ws = create_workspace(tmp_path / ".fedgov", PASSPHRASE)
    with Ledger.open(ws, PASSPHRASE) as ledger:
        _fill(ledger)
        seen: list[tuple[str, tuple]] = []

        def record(_conn, _cursor, sql: str, params: tuple, _context, _many) -> None:
            seen.append((sql, params))

        event.listen(ledger.store.engine, "before_cursor_execute", record)
        try:
            found = ledger.query(run_id="r1", round=2, node_id="n3")
        finally:
            event.remove(ledger.store.engine, "before_cursor_execute", record)
    assert sorted(e.entry_type for e in found) == sorted(TYPES * 2)  # each type twice: both batches
    sql, params = next((s, p) for s, p in seen if "fedgov_entries.node_id = " in s)
    with sqlite3.connect(ws.sqlite_path) as conn:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
    assert f"SEARCH fedgov_entries USING INDEX {TYPE_LED_INDEX} (entry_type=? AND run_id=? AND round=? AND " \
           f"node_id=?)" in plan, plan
    assert not [step for step in plan if step.startswith("SCAN fedgov_entries")], plan


def test_a_ledger_of_many_entry_types_answers_type_less_queries_by_filtering(backend: Workspace) -> None:
    with Ledger.open(backend, PASSPHRASE) as ledger:
        ledger.append([EntryDraft(f"custom.t{i:03}", {"k": i}, "node:n1", run_id=f"r{i % 3}", round=i % 2,
                                  node_id=f"n{i % 5}") for i in range(300)])  # more than SOUGHT_TYPES_MAX
        everything = ledger.query()
        for filters in ({"run_id": "r1"}, {"node_id": "n4"}, {"run_id": "r2", "round": 1, "node_id": "n2"}):
            assert [e.seq for e in ledger.query(**filters)] == \
                [e.seq for e in everything if all(getattr(e, k) == v for k, v in filters.items())]
        assert ledger.holds("run_id", "r2") and not ledger.holds("run_id", "r3")


# What a database holder can write into entry_type by hand, past the schema and the append-only trigger:
# statements run one connection per group (a schema edit shows only on the next connection).
UNLOCKED = [["DROP TRIGGER fedgov_entries_no_update"]]
NOT_NULL_DROPPED = [["PRAGMA writable_schema = ON",
                     "UPDATE sqlite_master SET sql = replace(sql, 'entry_type VARCHAR(64) NOT NULL', "
                     "'entry_type VARCHAR(64)') WHERE name = 'fedgov_entries'", "PRAGMA writable_schema = OFF"]]
HAND_EDITS = {"NULL": NOT_NULL_DROPPED + [["UPDATE fedgov_entries SET entry_type = NULL WHERE seq = ?"]],
              "not UTF-8": [["UPDATE fedgov_entries SET entry_type = CAST(x'ff' AS TEXT) WHERE seq = ?"]],
              "an integer": [["UPDATE fedgov_entries SET entry_type = 5 WHERE seq = ?"]]}


@pytest.mark.parametrize("edit", sorted(HAND_EDITS))
def test_a_hand_edited_entry_type_moves_no_row_in_or_out_of_a_type_less_query(workspace: Workspace,
                                                                               edit: str) -> None:
    queries = ({"run_id": "r1"}, {"run_id": ""}, {"node_id": "n2"}, {"round": 1}, {"run_id": "r2", "round": 0})
    with Ledger.open(workspace, PASSPHRASE) as ledger:
        _fill(ledger)
        answers = [[e.seq for e in ledger.query(**q)] for q in queries]
        target = ledger.query(entry_type="round.reply", run_id="", round=1, node_id="n2")[0].seq
    for group in UNLOCKED + HAND_EDITS[edit]:
        db = sqlite3.connect(workspace.sqlite_path, isolation_level=None)
        for statement in group:
            db.execute(statement, (target,) if "?" in statement else ())
        db.close()
    if edit == "not UTF-8":  # no query can read that row back (before this change neither); the others must answer
        queries, answers = zip(*[(q, a) for q, a in zip(queries, answers) if target not in a])
    with Ledger.open(workspace, PASSPHRASE) as ledger:  # the edit changed a type: no run, round or node moved
        assert [[e.seq for e in ledger.query(**q)] for q in queries] == list(answers)
    with pytest.raises(VerificationError, match=rf"seq {target}\b|cannot be read as the schema defines it"):
        verify_ledger(workspace)
