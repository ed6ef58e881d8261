"""A governed run's ledger, written with the governance API alone (no Flower): what the bundle tests and
bench/bundle_bench.py export.

The entries have the shapes server/round_recorder.py and server/consent_selector.py write:
nodes registered, consent granted, `run.started`, then per round `round.selection`, one
`round.reply` per node and `round.aggregated` in one batch, `round.evaluated` and a signed
checkpoint; `run.finished` and a checkpoint at the end. The last node withdraws its consent
before the last round, so that round excludes it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from governance import consent_store
from governance import entry_types as et
from governance.consent import ConsentRecord
from governance.ledger import EntryDraft, Ledger
from governance.node_store import register_nodes
from governance.workspace import Workspace

PURPOSE = "bundle test: screening model"


@dataclass(frozen=True)
class GovernedRun:
    run_id: str
    rounds: int
    nodes: list[str]
    consent: dict[str, str]  # node -> consent record id
    withdrawn: str  # the node that withdrew before the last round


def _digest(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def build_governed_run(ws: Workspace, passphrase: str, *, rounds: int, nodes: int, run_id: str = "run-1",
                       team_size: int = 10) -> GovernedRun:
    """Append one governed run of `rounds` × `nodes` to the workspace's ledger; return what it holds."""
    names = [f"node-{i:03d}" for i in range(nodes)]
    team = {node: f"team-{i // team_size}" for i, node in enumerate(names)}
    with Ledger.open(ws, passphrase) as ledger:
        register_nodes(ledger, [(n, hashlib.sha256(n.encode()).digest(), team[n]) for n in names], actor="ops")
        records = [ConsentRecord(record_id=f"consent-{n}", principal=n, team=team[n], purpose=PURPOSE,
                                 data_categories=["imaging"], privacy_notice_version="v1",
                                 privacy_notice_hash=_digest("notice"), collection_method="signed-form",
                                 granted_at="2026-01-01T00:00:00Z") for n in names]
        consent_store.grant(ledger, records, actor="compliance")
        model = _digest("initial")
        config = _digest("config")
        run = {"run_id": run_id, "config_hash": config}
        ledger.append([EntryDraft(et.RUN_STARTED, {
            "operator": "alice", "purpose": PURPOSE, "config": {"rounds": rounds}, "config_hash": config,
            "app_hash": _digest("app"), "strategy": {"name": "FedAvg"}, "seed": 7, "expected_nodes": nodes,
            "initial_model_hash": model, "binding": {str(1000 + i): n for i, n in enumerate(names)}},
            et.run_scope(run_id), model_hash=model, **run)])
        withdrawn = names[-1]
        for r in range(1, rounds + 1):
            if r == rounds:
                consent_store.withdraw(ledger, f"consent-{withdrawn}", "no longer wishes to take part", "compliance")
            chosen = [n for n in names if r < rounds or n != withdrawn]
            checks = {n: {"state": "valid" if n in chosen else "withdrawn", "record_id": f"consent-{n}"}
                      for n in names}
            ledger.append([EntryDraft(et.ROUND_SELECTION, {
                "format": "fedgov.selection.v1", "round": r, "seed": 7, "fraction": 1.0, "min_nodes": 2,
                "candidates": names, "checks": checks,
                "excluded": {n: "withdrawn" for n in names if n not in chosen}, "selected": chosen,
                "purpose": PURPOSE, "checked_at": "2026-02-01T00:00:00+00:00", "unbound_flower_nodes": [],
                "flower_node_ids": {n: str(1000 + names.index(n)) for n in chosen}},
                et.run_scope(run_id), round=r, model_hash=model, **run)])
            output = _digest("model", r)
            drafts = [EntryDraft(et.ROUND_REPLY, {
                "node_id": n, "flower_node_id": str(1000 + names.index(n)), "team": team[n], "num_examples": 512,
                "metrics": {"loss": 0.25, "num-examples": 512}, "consent_record_id": f"consent-{n}",
                "update_digest": _digest("update", n, r), "metrics_digest": _digest("metrics", n, r),
                "signature": base64.b64encode(hashlib.sha512(f"{n}{r}".encode()).digest()).decode(),
                "dataset_fingerprint": {"content_hash": _digest("data", n), "schema_hash": _digest("schema"),
                                        "rows": 512, "label_counts": {"0": 256, "1": 256},
                                        "digest": _digest("fingerprint", n)}},
                et.node_scope(n), round=r, node_id=n, model_hash=model, **run) for n in chosen]
            drafts.append(EntryDraft(et.ROUND_AGGREGATED, {
                "input_model_hash": model, "output_model_hash": output, "contributors": chosen,
                "train_metrics": {"loss": 0.25}}, et.run_scope(run_id), round=r, model_hash=output, **run))
            ledger.append(drafts)
            model = output
            ledger.append([EntryDraft(et.ROUND_EVALUATED, {"model_hash": model, "metrics": {"accuracy": 0.875}},
                                      et.run_scope(run_id), round=r, model_hash=model, **run)])
            ledger.checkpoint()
        ledger.append([EntryDraft(et.RUN_FINISHED, {"status": "completed", "reason": "", "final_model_hash": model},
                                  et.run_scope(run_id), model_hash=model, **run)])
        ledger.checkpoint()
    return GovernedRun(run_id, rounds, names, {n: f"consent-{n}" for n in names}, withdrawn)
