"""Everything the evidence says about one node (a data subject's team): `fedgov audit subject NODE`.

A pure function of an EvidenceSource (governance/evidence.py), so a workspace and an exported
bundle give the same answer. The answer (format `fedgov-subject/1`, written in
docs/governance.md "Queries") holds: the node's registration; every run in which it was a
candidate, with the purpose the run declared, and per round whether it was selected,
excluded (and why), not drawn, replied, was rejected or contributed to the aggregate, with the
consent record in force at selection; its consent records and withdrawals; every model
version built on its updates, directly or transitively; and whether its keys were shredded.
What a shred made unreadable shows as "erased", never as nothing.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from governance import entry_types as et
from governance.evidence import EvidenceSource, dotted
from governance.known_names import unknown_name
from governance.lineage import Contribution, ModelVersion, affected_models
from governance.privacy.budget import PRIVACY_BUDGET

FORMAT = "fedgov-subject/1"
ERASED = "erased"  # a field a crypto-shred made unreadable

READS = (et.NODE_REGISTERED, et.CONSENT_GRANTED, et.CONSENT_WITHDRAWN, et.RUN_STARTED, et.ROUND_SELECTION,
         et.ROUND_REPLY, et.ROUND_REJECTED, et.ROUND_AGGREGATED, et.ROUND_FAILED, et.RUN_FINISHED,
         et.KEY_DESTROYED)

CONSENT_FIELDS = ("record_id", "team", "purpose", "data_categories", "privacy_notice_version", "granted_at",
                  "expires_at", "withdrawn_at")


def subject_report(source: EvidenceSource, node_id: str) -> dict[str, Any]:
    """The node's whole story in the evidence; a node the evidence never names is a UsageError.

    The answer depends on the evidence only, not on where it is kept (it does not name the
    source), so a workspace and a bundle of the same entries give equal dicts.
    """
    by_type: dict[str, list[Any]] = defaultdict(list)
    for entry in source.entries(READS):
        by_type[dotted(entry.entry_type)].append(entry)
    payload = _Payloads(source)
    _require_known(by_type, payload, node_id)

    scope = et.node_scope(node_id)
    shreds = [{"seq": e.seq, "at": p.get("destroyed_at", e.timestamp), "actor": p.get("actor"),
               "reason": p.get("reason")}
              for e in by_type[et.KEY_DESTROYED] if (p := payload(e)) is not None and p.get("scope") == scope]
    consent = _consent(by_type, payload, node_id)
    runs = _runs(by_type, payload, node_id, consent)
    models = _models(by_type, payload, node_id)
    rounds = [r for run in runs for r in run["rounds"]]
    return {
        "format": FORMAT,
        "node_id": node_id,
        "registration": _registration(by_type, payload, node_id),
        "shredded": shreds[0] if shreds else None,
        "consent": consent,
        "runs": runs,
        "models": models,
        "summary": {
            "runs_using_data": sum(1 for run in runs if any(r["used_data"] for r in run["rounds"])),
            "rounds_using_data": sum(1 for r in rounds if r["used_data"]),
            "rounds_excluded": sum(1 for r in rounds if r["selection"] == "excluded"),
            "models_built_on_it": len(models),
            "consent_records": len(consent["records"]),
            "withdrawals": len(consent["withdrawals"]),
            "shredded": bool(shreds),
        },
    }


class _Payloads:
    """Each payload read once (a subject report reads selections several times)."""

    def __init__(self, source: EvidenceSource) -> None:
        self.source = source
        self.cache: dict[int, dict[str, Any] | None] = {}

    def __call__(self, entry: Any) -> dict[str, Any] | None:
        if entry.seq not in self.cache:
            self.cache[entry.seq] = self.source.payload(entry)
        return self.cache[entry.seq]


def _candidates(payload: dict[str, Any] | None) -> list[str]:
    return list((payload or {}).get("candidates", [])) + list((payload or {}).get("checks", {}))


def _require_known(by_type: dict[str, list[Any]], payload: _Payloads, node_id: str) -> None:
    known = {e.node_id for entries in by_type.values() for e in entries if e.node_id}
    if node_id in known:
        return
    for entry in (*by_type[et.ROUND_SELECTION], *by_type[et.ROUND_FAILED]):
        known.update(_candidates(payload(entry)))
    if node_id not in known:
        raise unknown_name("node", node_id, known, "the evidence")


def _registration(by_type: dict[str, list[Any]], payload: _Payloads, node_id: str) -> dict[str, Any] | None:
    for entry in by_type[et.NODE_REGISTERED]:
        if entry.node_id == node_id:
            p = payload(entry)
            return {"seq": entry.seq, "at": entry.timestamp, "team": ERASED if p is None else p.get("team")}
    return None


def _consent(by_type: dict[str, list[Any]], payload: _Payloads, node_id: str) -> dict[str, list[dict[str, Any]]]:
    records: list[dict[str, Any]] = []
    withdrawals: list[dict[str, Any]] = []
    for entry in by_type[et.CONSENT_GRANTED]:
        if entry.node_id != node_id:
            continue
        p = payload(entry)
        if p is None:
            records.append({"seq": entry.seq, "recorded_at": entry.timestamp, "erased": True,
                            **{f: ERASED for f in CONSENT_FIELDS}})
        else:
            record = p.get("record", {})
            records.append({"seq": entry.seq, "recorded_at": entry.timestamp, "erased": False,
                            **{f: record.get(f) for f in CONSENT_FIELDS}})
    for entry in by_type[et.CONSENT_WITHDRAWN]:
        if entry.node_id != node_id:
            continue
        p = payload(entry)
        withdrawals.append({"seq": entry.seq, "recorded_at": entry.timestamp, "erased": p is None,
                            **{f: ERASED if p is None else p.get(f) for f in ("record_id", "withdrawn_at", "reason")}})
    first = {}  # a record's first withdrawal is the one that counts (governance/consent.py fold_consent)
    for w in withdrawals:
        first.setdefault(w["record_id"], w["withdrawn_at"])
    for r in records:
        if not r["erased"] and r["withdrawn_at"] is None:
            r["withdrawn_at"] = first.get(r["record_id"])
    return {"records": records, "withdrawals": withdrawals}


def _runs(by_type: dict[str, list[Any]], payload: _Payloads, node_id: str,
          consent: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rounds: dict[tuple[str, int], dict[str, Any]] = {}

    def row(entry: Any) -> dict[str, Any]:
        key = (entry.run_id, entry.round)
        if key not in rounds:
            rounds[key] = {"run_id": entry.run_id, "round": entry.round, "selection": None, "exclusion_reason": None,
                           "consent_record_id": None, "consent_state": None, "reply": None, "reply_seq": None,
                           "reply_consent_record_id": None, "rejection_reason": None, "contributed": False,
                           "model_hash": None, "round_failed": None, "used_data": False, "dataset_fingerprint": None,
                           "consent_purpose": None, "seqs": []}
        rounds[key]["seqs"].append(entry.seq)
        return rounds[key]

    for entry in (*by_type[et.ROUND_SELECTION], *by_type[et.ROUND_FAILED]):
        p = payload(entry)
        check = (p or {}).get("checks", {}).get(node_id)
        if check is None:
            continue
        r = row(entry)
        # A node excluded for its privacy budget had valid consent: the gate looks at consenting nodes only.
        consent_state = "valid" if check.get("state") == PRIVACY_BUDGET else check.get("state")
        r["consent_record_id"], r["consent_state"] = check.get("record_id"), consent_state
        if dotted(entry.entry_type) == et.ROUND_FAILED:  # selection refused: too few nodes had valid consent
            r["selection"] = "excluded" if check.get("state") != "valid" else "round-refused"
            r["exclusion_reason"] = check.get("state") if check.get("state") != "valid" else p.get("reason")
        elif node_id in p.get("excluded", {}):
            r["selection"], r["exclusion_reason"] = "excluded", p["excluded"][node_id]
        else:
            r["selection"] = "selected" if node_id in p.get("selected", []) else "not-drawn"
    for entry in by_type[et.ROUND_REPLY]:
        if entry.node_id == node_id:
            p = payload(entry)
            r = row(entry)
            r["reply"], r["reply_seq"], r["used_data"] = "replied", entry.seq, True
            if p is None:
                r["dataset_fingerprint"] = ERASED
                r["reply_consent_record_id"] = ERASED
            else:
                r["dataset_fingerprint"] = (p.get("dataset_fingerprint") or {}).get("digest")
                r["reply_consent_record_id"] = p.get("consent_record_id")
    for entry in by_type[et.ROUND_REJECTED]:
        if entry.node_id == node_id:
            p = payload(entry)
            r = row(entry)
            r["reply"], r["reply_seq"] = "rejected", entry.seq
            r["rejection_reason"] = ERASED if p is None else p.get("reason")
    for entry in by_type[et.ROUND_AGGREGATED]:
        p = payload(entry)
        if p is not None and node_id in p.get("contributors", []):
            r = row(entry)
            r["contributed"], r["used_data"], r["model_hash"] = True, True, p.get("output_model_hash")

    for entry in by_type[et.ROUND_FAILED]:  # the round itself failed after the node took part
        key = (entry.run_id, entry.round)
        if key in rounds:
            rounds[key]["round_failed"] = (payload(entry) or {}).get("reason", ERASED)
            if entry.seq not in rounds[key]["seqs"]:
                rounds[key]["seqs"].append(entry.seq)
    records = {c["record_id"]: c for c in consent["records"] if not c["erased"]}
    for r in rounds.values():
        if r["consent_record_id"] is not None:
            held = records.get(r["consent_record_id"])
            r["consent_purpose"] = ERASED if held is None and any(c["erased"] for c in consent["records"]) \
                else (held or {}).get("purpose")

    starts = {e.run_id: (e, payload(e)) for e in by_type[et.RUN_STARTED]}
    finishes = {e.run_id: payload(e) for e in by_type[et.RUN_FINISHED]}
    runs = []
    for run_id in sorted({k[0] for k in rounds}, key=lambda r: (starts[r][0].seq if r in starts else -1, r)):
        start, p = starts.get(run_id, (None, None))
        runs.append({
            "run_id": run_id,
            "purpose": (p or {}).get("purpose"),
            "operator": (p or {}).get("operator"),
            "started_at": start.timestamp if start is not None else None,
            "status": (finishes.get(run_id) or {}).get("status", "not finished"),
            "rounds": sorted((r for k, r in rounds.items() if k[0] == run_id), key=lambda r: r["round"]),
        })
    return runs


def _models(by_type: dict[str, list[Any]], payload: _Payloads, node_id: str) -> list[dict[str, Any]]:
    """Every model version built on the node's updates: contributed to directly, or descended from one."""
    versions: list[ModelVersion] = []
    made_in: dict[str, list[tuple[int, str]]] = defaultdict(list)  # hash -> (seq, run/round), in ledger order
    direct: set[str] = set()
    for entry in by_type[et.RUN_STARTED]:
        p = payload(entry)
        if p is not None:
            versions.append(ModelVersion(p["initial_model_hash"], entry.run_id, 0, None, []))
            made_in[p["initial_model_hash"]].append((entry.seq, f"{entry.run_id}/0"))
    for entry in by_type[et.ROUND_AGGREGATED]:
        p = payload(entry)
        if p is None:
            continue
        contributors = [Contribution(n, "", "", "", "") for n in p.get("contributors", [])]
        versions.append(ModelVersion(p["output_model_hash"], entry.run_id, entry.round, p["input_model_hash"],
                                     contributors))
        made_in[p["output_model_hash"]].append((entry.seq, f"{entry.run_id}/{entry.round}"))
        if node_id in p.get("contributors", []):
            direct.add(p["output_model_hash"])
    return [{"model_hash": h, "made_in": list(dict.fromkeys(w for _, w in sorted(made_in[h]))), "how": "direct" if h in direct else "transitive"}
            for h in affected_models(versions, node_id)]
