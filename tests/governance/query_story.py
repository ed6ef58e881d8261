"""A small governed history for the query tests, written with the governance API in the recorder's shapes.

No Flower: registration, consent and two runs' entries are appended as server/round_recorder.py and
server/consent_selector.py would write them (docs/governance.md "Entries").

    nodes: n1, n2 (team radiology), n3 (team oncology)
    consent: c-1 n1 screening, c-2 n2 screening, c-3 n3 research
    run r1 (purpose screening), initial model M0:
      round 1: candidates n1 n2 n3; n3 excluded wrong-purpose; n1 n2 reply; aggregate M1 from n1 n2
      (c-2 withdrawn)
      round 2: n2 excluded withdrawn; n1 replies; aggregate M2 from n1
    run r2 (purpose research), initial model M2 (r1's result):
      round 1: candidates n1 n3; n1 excluded wrong-purpose; n3 replies; aggregate M3 from n3
"""

from __future__ import annotations

import hashlib

from governance import consent_store
from governance import entry_types as et
from governance.clock import utc_now
from governance.consent import ConsentRecord
from governance.ledger import EntryDraft, Ledger
from governance.node_store import register_nodes

NOTICE = hashlib.sha256(b"notice").hexdigest()
TEAMS = {"n1": "radiology", "n2": "radiology", "n3": "oncology"}


def digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


M0, M1, M2, M3 = (digest(f"model-{i}") for i in range(4))


def _draft(entry_type: str, payload: dict, run: str, round_: int | None = None, node: str = "",
           model: str = "", scope: str | None = None) -> EntryDraft:
    return EntryDraft(entry_type, payload, scope=scope or et.run_scope(run), run_id=run, round=round_,
                      node_id=node, model_hash=model, config_hash=digest(f"config-{run}"))


def _start(run: str, purpose: str, initial: str) -> EntryDraft:
    return _draft(et.RUN_STARTED, {"operator": "op", "purpose": purpose, "config": {}, "config_hash": "",
                                   "app_hash": "", "strategy": {}, "seed": 1, "expected_nodes": 3,
                                   "initial_model_hash": initial, "binding": {}}, run, model=initial)


def _selection(run: str, round_: int, checks: dict[str, tuple[str, str | None]], purpose: str,
               model: str) -> EntryDraft:
    excluded = {n: state for n, (state, _) in checks.items() if state != "valid"}
    return _draft(et.ROUND_SELECTION, {
        "format": "fedgov-selection/1", "round": round_, "seed": 1, "fraction": 1.0, "min_nodes": 1,
        "candidates": sorted(checks), "checks": {n: {"state": s, "record_id": r} for n, (s, r) in sorted(checks.items())},
        "excluded": excluded, "selected": sorted(n for n in checks if n not in excluded),
        "purpose": purpose, "checked_at": utc_now(), "unbound_flower_nodes": [], "flower_node_ids": {},
    }, run, round_, model=model)


def _reply(run: str, round_: int, node: str, consent: str, model: str) -> EntryDraft:
    return _draft(et.ROUND_REPLY, {
        "node_id": node, "flower_node_id": "1", "team": TEAMS[node], "num_examples": 10, "metrics": {},
        "consent_record_id": consent, "update_digest": digest(f"update-{run}-{round_}-{node}"),
        "dataset_fingerprint": {"digest": digest(f"data-{node}")},
    }, run, round_, node=node, model=model, scope=et.node_scope(node))


def _aggregate(run: str, round_: int, parent: str, output: str, contributors: list[str]) -> EntryDraft:
    return _draft(et.ROUND_AGGREGATED, {"input_model_hash": parent, "output_model_hash": output,
                                        "contributors": sorted(contributors), "train_metrics": {}},
                  run, round_, model=output)


def _finish(run: str, final: str) -> EntryDraft:
    return _draft(et.RUN_FINISHED, {"status": "completed", "reason": "", "final_model_hash": final}, run)


def write_story(ledger: Ledger) -> None:
    """Append the history above and sign it."""
    register_nodes(ledger, [(n, digest(n).encode()[:32], t) for n, t in TEAMS.items()], "op")
    consent_store.grant(ledger, [
        ConsentRecord(record_id=f"c-{i}", principal=n, team=TEAMS[n], purpose=p, data_categories=["imaging"],
                      privacy_notice_version="1", privacy_notice_hash=NOTICE, collection_method="form",
                      granted_at="2026-01-01T00:00:00Z")
        for i, (n, p) in enumerate((("n1", "screening"), ("n2", "screening"), ("n3", "research")), start=1)], "dpo")
    ledger.append([
        _start("r1", "screening", M0),
        _selection("r1", 1, {"n1": ("valid", "c-1"), "n2": ("valid", "c-2"), "n3": ("wrong-purpose", "c-3")},
                   "screening", M0),
        _reply("r1", 1, "n1", "c-1", M0), _reply("r1", 1, "n2", "c-2", M0),
        _aggregate("r1", 1, M0, M1, ["n1", "n2"]),
    ], sign=True)
    consent_store.withdraw(ledger, "c-2", "left the study", "dpo")
    ledger.append([
        _selection("r1", 2, {"n1": ("valid", "c-1"), "n2": ("withdrawn", "c-2"), "n3": ("wrong-purpose", "c-3")},
                   "screening", M1),
        _reply("r1", 2, "n1", "c-1", M1),
        _aggregate("r1", 2, M1, M2, ["n1"]),
        _finish("r1", M2),
        _start("r2", "research", M2),
        _selection("r2", 1, {"n1": ("wrong-purpose", "c-1"), "n3": ("valid", "c-3")}, "research", M2),
        _reply("r2", 1, "n3", "c-3", M2),
        _aggregate("r2", 1, M2, M3, ["n3"]),
        _finish("r2", M3),
    ], sign=True)
