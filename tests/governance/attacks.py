"""What an operator who holds the SQLite database can do to it, written once for the attack tests.

Every helper works on the raw file with the standard `sqlite3` module, as an attacker
would: the append-only triggers are dropped first, and a rewritten entry gets a
recomputed leaf hash and a recomputed cache of tree nodes, so only signatures can tell.
The attack tests reach fedgov's Merkle, leaf and checkpoint code only through here.
"""

from __future__ import annotations

import re
import sqlite3

from governance.ledger.checkpoint import public_key_bytes, sign_checkpoint
from governance.verify.checkpoint import parse_checkpoint
from governance.verify.leaf import leaf_bytes
from governance.verify.merkle import Frontier, hash_leaf
from governance.workspace import Workspace
from tests.fedgov_command import run_fedgov

ENTRY_FIELDS = ("seq", "timestamp", "entry_type", "run_id", "round", "node_id", "model_hash", "config_hash",
                "key_id", "ciphertext")


def _untriggered(ws: Workspace) -> sqlite3.Connection:
    """The ledger file, opened as its holder would, with the append-only triggers dropped."""
    db = sqlite3.connect(ws.sqlite_path)
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        db.execute(f"DROP TRIGGER {name}")
    return db


def sql(ws: Workspace, *statements: str, params: tuple = ()) -> None:
    """Run statements on the ledger file with the append-only triggers dropped."""
    db = _untriggered(ws)
    for statement in statements:
        db.execute(statement, params if "?" in statement else ())
    db.commit()
    db.close()


def sql_script(ws: Workspace, script: str) -> None:
    """Run a file of SQL statements (a tamper vector's `attack.sql`) with the triggers dropped."""
    db = _untriggered(ws)
    db.executescript(script)
    db.commit()
    db.close()


def leaf_hash_of(ws: Workspace, seq: int, **fields: object) -> bytes:
    """The leaf hash entry `seq` would have with `fields` changed: what a forger writes beside them."""
    db = sqlite3.connect(ws.sqlite_path)
    row = dict(zip(ENTRY_FIELDS, db.execute(f"SELECT {', '.join(ENTRY_FIELDS)} FROM fedgov_entries WHERE seq = ?",
                                            (seq,)).fetchone()))
    db.close()
    row.update(fields)
    return hash_leaf(leaf_bytes(*(row[f] for f in ENTRY_FIELDS)))


def rewrite_entry(ws: Workspace, seq: int, **fields: object) -> None:
    """Change an entry's fields, recompute its leaf hash and every cached tree node: a clean-looking forgery."""
    leaf = leaf_hash_of(ws, seq, **fields)
    assignments = ", ".join(f"{k} = ?" for k in fields)
    sql(ws, f"UPDATE fedgov_entries SET {assignments}, leaf_hash = ? WHERE seq = {seq}",
        params=(*fields.values(), leaf))
    recompute_cache(ws)


def resign_checkpoints(ws: Workspace) -> None:
    """Sign every checkpoint again with a key of the attacker's own, and put its public key in the meta table."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    attacker = Ed25519PrivateKey.generate()
    db = sqlite3.connect(ws.sqlite_path)
    rows = db.execute("SELECT id, note FROM fedgov_checkpoints").fetchall()
    db.close()
    statements = [f"UPDATE fedgov_meta SET value = '{base64.b64encode(public_key_bytes(attacker)).decode()}' "
                  "WHERE key = 'public_key'"]
    for cp_id, note in rows:
        cp = parse_checkpoint(note)
        resigned = sign_checkpoint(cp.origin, cp.size, cp.root, cp.origin, attacker).replace("'", "''")
        statements.append(f"UPDATE fedgov_checkpoints SET note = '{resigned}' WHERE id = {cp_id}")
    sql(ws, *statements)


def recompute_cache(ws: Workspace) -> None:
    """Rebuild fedgov_tree_nodes from the stored leaf hashes, as an attacker covering tracks would."""
    db = sqlite3.connect(ws.sqlite_path)
    leaves = [bytes(h) for (h,) in db.execute("SELECT leaf_hash FROM fedgov_entries ORDER BY seq")]
    version = db.execute("SELECT value FROM fedgov_meta WHERE key = 'schema_version'").fetchone()[0]
    low = 4 if version == "2" else 1  # schema 2 stores levels from 4 up
    db.close()
    nodes = Frontier().extend(leaves, min_level=low)
    sql(ws, "DELETE FROM fedgov_tree_nodes")
    db = sqlite3.connect(ws.sqlite_path)
    db.executemany("INSERT INTO fedgov_tree_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
    db.commit()
    db.close()


def count(ws: Workspace, table: str, where: str = "1 = 1") -> int:
    db = sqlite3.connect(ws.sqlite_path)
    try:
        return db.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}").fetchone()[0]
    finally:
        db.close()


def fails_with(args: list[str], line: str, code: int = 1, env: dict[str, str] | None = None) -> None:
    """The command exits `code` with exactly one stderr line, equal to `line` (`...` matches anything)."""
    result = run_fedgov(*args, env=env)
    assert result.returncode == code, result.stdout + result.stderr
    got = result.stderr
    assert got.count("\n") == 1 and "Traceback" not in got, got
    pattern = ".+".join(re.escape(part) for part in line.split("..."))
    assert re.fullmatch(pattern, got.rstrip("\n")), got


def succeeds(*args: str, env: dict[str, str] | None = None) -> str:
    result = run_fedgov(*args, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def insert_forged_entry(ws: Workspace, key_id: str, ciphertext: bytes, **fields: object) -> int:
    """Append a row by hand with a correct leaf hash and cache: what a database holder can forge. Returns its seq."""
    import datetime

    db = sqlite3.connect(ws.sqlite_path)
    seq = db.execute("SELECT MAX(seq) + 1 FROM fedgov_entries").fetchone()[0]
    db.close()
    row = {"seq": seq, "timestamp": datetime.datetime(2020, 1, 1).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
           "entry_type": "consent.granted", "run_id": "", "round": None, "node_id": "n1", "model_hash": "",
           "config_hash": "", "key_id": key_id, "ciphertext": ciphertext, **fields}
    leaf = hash_leaf(leaf_bytes(*(row[f] for f in ENTRY_FIELDS)))
    sql(ws, f"INSERT INTO fedgov_entries ({', '.join(ENTRY_FIELDS)}, leaf_hash) VALUES "
        f"({', '.join('?' * (len(ENTRY_FIELDS) + 1))})", params=(*(row[f] for f in ENTRY_FIELDS), leaf))
    recompute_cache(ws)
    return seq
