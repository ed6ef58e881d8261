"""Verifying a stored ledger on every core: worker processes, each reading ranges of entries itself.

Leaf hashing and reading rows hold the GIL, so threads would not help: `verify_store` hands
a ledger of at least PARALLEL_MIN entries to processes. The parent opens its read
transaction first and fixes there what is verified: the checkpoint rows, and N, the number
of entries (seqs 0..N-1, read as the first and the last seq). It cuts 0..N into aligned
subtrees (governance/ledger/subtrees.py) and hands them out, one at a time, to whichever
worker is free; each worker reads its range with its own connection and returns the range's
subtree, its first bad row and the cached nodes to compare. The parent folds the ranges in
seq order, so the report and the first failure are the serial verifier's.

What the workers read is the parent's snapshot:
- PostgreSQL: the parent exports its REPEATABLE READ snapshot (`pg_export_snapshot()`) and
  every worker imports it (`SET TRANSACTION SNAPSHOT`): the same rows, to the byte.
- SQLite has no shared snapshots: each worker reads in a transaction of its own begun after
  N was fixed, and only seqs below N. Rows below N are append-only (the triggers), so they
  are those the parent's snapshot holds; someone who edits rows while they are being
  verified can at worst change which failure is reported, never make a rewritten ledger
  pass (every range must still hash to the signed roots).

A worker that cannot read a row (a driver error: a value of the wrong type, a lost
connection) makes the parent verify serially in its own transaction instead, which names the
failure as it always has. Workers are fresh interpreters (`python -c`, as `spawn` but without
re-running the caller's main script), never `fork` (a forked child would share the parent's
SQLite connections and locks), import only this module, the driver and
governance.verify, ignore SIGINT, and are stopped by the parent however it leaves: success,
a failed check, an error or Ctrl-C.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any

from governance.ledger.subtrees import Range, RangeResult, split, verify_range, verify_ranges
from governance.ledger.tree_cache import ExpectedNodes
from governance.verify.errors import FedgovError
from governance.verify.rows import KnownCheckpoint, VerifyReport, signed_targets

if TYPE_CHECKING:  # the workers import none of this: SQLAlchemy is slow to load
    from sqlalchemy.engine import Connection

    from governance.ledger.store import LedgerStore
    from governance.verify.checkpoint import VerifierKey

PARALLEL_MIN = 262144  # entries; below it, starting workers (~0.1-0.2 s) costs more than they save
RANGES_PER_WORKER = 8  # ranges handed out per worker: a worker slowed by other load takes fewer
SMALLEST_RANGE = 4096  # entries
FETCH = 16384  # rows per driver fetch
# The entry columns in ENTRY_COLUMNS order (governance/ledger/store.py; a test holds them equal).
COLUMNS = "seq, entry_type, timestamp, run_id, round, node_id, model_hash, config_hash, key_id, ciphertext, leaf_hash"


class WorkerError(FedgovError):
    """A worker process stopped without answering (killed, out of memory): nothing was concluded."""

    exit_code = 2


@dataclass(frozen=True)
class Reader:
    """How a worker opens the database, and the snapshot it reads (plain values: sent to each worker)."""

    sqlite: bool
    args: tuple[Any, ...]  # the driver's connect() arguments
    kwargs: dict[str, Any]
    snapshot: str | None  # PostgreSQL: the parent's exported snapshot
    min_level: int  # the lowest stored tree level


@dataclass(frozen=True)
class ReadFailed:
    """A worker's answer when the driver could not read its range."""

    error: str


class _ReadFailed(Exception):
    """Raised through the fold when a worker could not read: the parent then verifies serially."""


def workers_for(requested: int) -> int:
    """The worker count: `requested`, or every core this process may run on when it is 0."""
    if requested < 0:
        raise ValueError("workers must be 0 (every core) or more")
    return requested or len(os.sched_getaffinity(0))


def verify_in_workers(store: LedgerStore, conn: Connection, checkpoints: Sequence[dict[str, Any]],
                      keys: Sequence[VerifierKey], origin: str, known: Sequence[KnownCheckpoint],
                      nodes: ExpectedNodes, workers: int) -> VerifyReport | None:
    """`verify_rows`'s report for the entries in `conn`'s snapshot, checked by `workers` processes;
    the completed tree nodes collected into `nodes`.

    None when the serial verifier should run instead, in the same transaction: a ledger under
    PARALLEL_MIN entries, seqs that are not plainly 0..N-1 (the serial verifier names what is
    wrong with them), or a row a worker could not read.
    """
    first, last = store.seq_bounds(conn)
    if workers < 2 or type(first) is not int or first != 0 or type(last) is not int or last + 1 < PARALLEL_MIN:
        return None
    size = last + 1
    signed = signed_targets(checkpoints, keys, origin, known)  # §6's first steps, as the serial verifier takes them
    sizes = sorted({target.size for target in signed[1]})  # the signed sizes, not the rows' (a row may say 13.0)
    reader = Reader(store.is_sqlite, *store.reader_args(), store.export_snapshot(conn), store.min_stored_level)
    tasks = [Range(start, end, tuple(s for s in sizes if start < s <= end))
             for start, end in split(size, workers * RANGES_PER_WORKER, SMALLEST_RANGE)]
    try:
        with _started(reader, workers) as pool:
            return verify_ranges(pool.results(tasks), signed, known=known, nodes=nodes,
                                 min_level=store.min_stored_level)
    except _ReadFailed:
        return None


class _Pool:
    """Worker processes and a pipe to each; `results` hands out ranges and yields answers in range order.

    Each worker is `python -c _BOOT` in a process group of its own, so a Ctrl-C at the
    terminal reaches only the parent, which stops them. Not `multiprocessing`'s spawn: that
    re-runs the caller's main script in every child, which a library must not ask of its callers.
    """

    def __init__(self, reader: Reader, count: int) -> None:
        self.pipes: list[Pipe] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        for _ in range(count):
            ours, theirs = multiprocessing.Pipe()
            try:
                process = subprocess.Popen([sys.executable, "-c", _BOOT, str(theirs.fileno())],
                                           pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, process_group=0)
            finally:
                theirs.close()
            self.processes.append(process)
            self.pipes.append(ours)
            ours.send((sys.path, reader))

    def results(self, tasks: Sequence[Range]) -> Iterator[RangeResult]:
        """Each task's result, in task order; a free worker gets the next task at once."""
        following = iter(enumerate(tasks))
        busy: dict[Pipe, int] = {}
        done: dict[int, RangeResult] = {}
        for pipe in self.pipes:
            self._hand_out(pipe, following, busy)
        for wanted in range(len(tasks)):
            while wanted not in done:
                for ready in wait(list(busy)):
                    assert isinstance(ready, Pipe)
                    try:
                        answer = ready.recv()
                    except (EOFError, OSError):  # the worker is gone
                        raise self._lost(ready) from None
                    if isinstance(answer, ReadFailed):
                        raise _ReadFailed(answer.error)
                    done[busy.pop(ready)] = answer
                    self._hand_out(ready, following, busy)
            yield done.pop(wanted)

    def _hand_out(self, pipe: Pipe, following: Iterator[tuple[int, Range]], busy: dict[Pipe, int]) -> None:
        task = next(following, None)
        if task is not None:
            try:
                pipe.send(task[1])
            except OSError:
                raise self._lost(pipe) from None
            busy[pipe] = task[0]

    def _lost(self, pipe: Pipe) -> WorkerError:
        process = self.processes[self.pipes.index(pipe)]
        return WorkerError(f"a verify worker process stopped (exit code {process.wait()}) before it answered; nothing "
                           "was concluded: verify again (--workers 1: one process)")

    def stop(self) -> None:
        """Stop every worker and wait for it: idle or busy, nothing is left running."""
        for pipe in self.pipes:
            pipe.close()
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            process.wait()


@contextmanager
def _started(reader: Reader, count: int) -> Iterator[_Pool]:
    pool = _Pool(reader, count)
    try:
        yield pool
    finally:
        pool.stop()


# -- in the worker process ---------------------------------------------------------------------


# The worker's whole program: the parent's import path first (as multiprocessing's spawn does), then `serve`.
_BOOT = ("import sys\n"
         "from multiprocessing.connection import Connection\n"
         "pipe = Connection(int(sys.argv[1]))\n"
         "path, reader = pipe.recv()\n"
         "sys.path[:0] = [p for p in path if p not in sys.path]\n"
         "from governance.ledger.verify_workers import serve\n"
         "serve(pipe, reader)\n")


def serve(pipe: Pipe, reader: Reader) -> None:
    """A worker's life: open a read transaction on the parent's snapshot, answer ranges until the pipe closes."""
    if reader.sqlite:
        import sqlite3 as driver
    else:
        import psycopg as driver  # type: ignore[no-redef]
    try:
        db = _open(reader)
    except driver.Error as err:
        db, failed = None, ReadFailed(f"{type(err).__name__}: {err}")
    while True:
        try:
            task = pipe.recv()
        except (EOFError, OSError):  # the parent closed the pipe, or is gone
            return
        if db is None:
            answer: RangeResult | ReadFailed = failed
        else:
            try:
                answer = verify_range(_chunks(db, reader, task), task, reader.min_level,
                                      lambda seq: _next_seq(db, reader, seq))
            except driver.Error as err:
                answer = ReadFailed(f"{type(err).__name__}: {err}")
        try:
            pipe.send(answer)
        except OSError:  # the parent is gone: nobody is waiting for the answer
            return


def _open(reader: Reader) -> Any:
    """The worker's own connection, inside a read transaction (on PostgreSQL, in the parent's snapshot)."""
    if reader.sqlite:
        import sqlite3

        db = sqlite3.connect(*reader.args, **reader.kwargs)
        db.isolation_level = None  # we issue BEGIN ourselves
        db.execute("PRAGMA query_only = ON")
        db.execute("BEGIN")
        return db
    import psycopg
    from psycopg import sql

    db = psycopg.connect(*reader.args, **reader.kwargs)
    db.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    db.read_only = True
    if reader.snapshot is not None:  # the first statement of the transaction, as PostgreSQL requires
        db.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(reader.snapshot)))
    return db


def _chunks(db: Any, reader: Reader, task: Range) -> Iterator[list[tuple]]:
    """The range's rows, seq order, in lists of FETCH (a server-side cursor on PostgreSQL)."""
    query = f"SELECT {COLUMNS} FROM fedgov_entries WHERE seq >= {{0}} AND seq < {{0}} ORDER BY seq"
    if reader.sqlite:
        cursor = db.execute(query.format("?"), (task.start, task.end))
    else:
        cursor = db.cursor(name="fedgov_verify_range", binary=True)
        cursor.execute(query.format("%s"), (task.start, task.end))
    try:
        while chunk := cursor.fetchmany(FETCH):
            yield chunk
    finally:
        cursor.close()


def _next_seq(db: Any, reader: Reader, seq: int) -> Any:
    """The first stored seq >= `seq`, or None: the entry a gap at a range's end runs into."""
    mark = "?" if reader.sqlite else "%s"
    cursor = db.execute(f"SELECT min(seq) FROM fedgov_entries WHERE seq >= {mark}", (seq,))
    return cursor.fetchone()[0]
