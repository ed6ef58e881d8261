"""Model lineage from facts the ledger holds: which nodes, data and consent made each model.

Answers "which models did node X's data reach?" (``affected_models``, for a
withdrawal or erasure request), "what made this model?" (``lineage_tree``), and
exports W3C PROV-JSON (``to_prov_json``) for other tools.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from governance.errors import UsageError, VerificationError

FEDGOV_NS = "https://fedgov.dev/ns#"


class UnknownModelError(UsageError):
    """A model hash that no recorded model version has."""


class InconsistentLineageError(VerificationError):
    """Lineage facts that contradict each other: one hash with two histories, or a cycle."""


@dataclass(frozen=True)
class Contribution:
    node_id: str
    team: str
    dataset_fingerprint: str
    consent_record_id: str
    update_digest: str

    def to_dict(self) -> dict[str, str]:
        return {
            "node_id": self.node_id,
            "team": self.team,
            "dataset_fingerprint": self.dataset_fingerprint,
            "consent_record_id": self.consent_record_id,
            "update_digest": self.update_digest,
        }


@dataclass(frozen=True)
class TriggerLink:
    """The monitor.trigger entry a retraining run answers (its run.started `trigger`), and what it decided."""

    seq: int
    leaf_hash: str
    fired: tuple[str, ...] = ()
    decision: str = ""  # "" where the entry's payload could not be read
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "leaf_hash": self.leaf_hash, "fired": list(self.fired), "decision": self.decision,
                "reason": self.reason}


@dataclass(frozen=True)
class ModelVersion:
    model_hash: str
    run_id: str
    round: int
    parent_hash: str | None
    contributors: list[Contribution] = field(default_factory=list)
    trigger: TriggerLink | None = None  # a retraining run's cause (docs/monitoring.md)


VersionKey = tuple[str, str]  # (run id, model hash): a version is a model made in one run


class _Lineage:
    """Versions keyed by (run, hash), so two runs that make identical bytes stay two versions.

    A parent hash resolves to the version of the same run when there is one (the usual
    case), else to the earliest recorded version with that hash (a run started from an
    earlier run's model). A run's initial model (round 0, no parent) that another run's round
    made has that version as its parent, so lineage crosses from run to run.
    """

    def __init__(self, versions: Iterable[ModelVersion]) -> None:
        self.by_key: dict[VersionKey, ModelVersion] = {}
        by_hash: dict[str, list[ModelVersion]] = defaultdict(list)
        for version in versions:
            key = (version.run_id, version.model_hash)
            seen = self.by_key.get(key)
            if seen is not None and seen != version:
                raise InconsistentLineageError(
                    f"model {version.model_hash} is recorded twice in run {version.run_id} with different "
                    f"facts (round {seen.round} and round {version.round})"
                )
            if seen is None:
                self.by_key[key] = version
                by_hash[version.model_hash].append(version)
        self.by_hash = {h: sorted(vs, key=_order) for h, vs in by_hash.items()}
        for start in self.by_key:
            visited = {start}
            parent = self.parent_key(self.by_key[start])
            while parent is not None:
                if parent in visited:
                    raise InconsistentLineageError(f"model {start[1]} is its own ancestor")
                visited.add(parent)
                parent = self.parent_key(self.by_key[parent])

    def parent_key(self, version: ModelVersion) -> VersionKey | None:
        if version.parent_hash is None:
            if version.round == 0:  # a run started from a model another run made: its history continues there
                made = [v for v in self.by_hash.get(version.model_hash, ()) if v.round > 0 and v.run_id != version.run_id]
                return (made[0].run_id, made[0].model_hash) if made else None
            return None
        if (version.run_id, version.parent_hash) in self.by_key:
            return (version.run_id, version.parent_hash)
        earlier = self.by_hash.get(version.parent_hash)
        return (earlier[0].run_id, earlier[0].model_hash) if earlier else None


def _order(version: ModelVersion) -> tuple[str, int, str]:
    return (version.run_id, version.round, version.model_hash)


def affected_models(versions: Iterable[ModelVersion], node_id: str) -> list[str]:
    """Every model a node's updates reached: those it contributed to and all their descendants.

    Ordered by (run id, round); a hash made in several runs is listed once. Models made
    before the node's first contribution are not affected, unless they descend from one.
    """
    lineage = _Lineage(versions)
    children: dict[VersionKey, list[VersionKey]] = defaultdict(list)
    for key, version in lineage.by_key.items():
        parent = lineage.parent_key(version)
        if parent is not None:
            children[parent].append(key)
    frontier = [k for k, v in lineage.by_key.items() if any(c.node_id == node_id for c in v.contributors)]
    affected: set[VersionKey] = set()
    while frontier:
        key = frontier.pop()
        if key in affected:
            continue
        affected.add(key)
        frontier.extend(children.get(key, []))
    ordered = [lineage.by_key[k].model_hash for k in sorted(affected, key=lambda k: _order(lineage.by_key[k]))]
    return list(dict.fromkeys(ordered))


def lineage_tree(versions: Iterable[ModelVersion], model_hash: str, run_id: str | None = None) -> dict[str, Any]:
    """A model's history as nested dicts: model -> run, round, contributors, parent (recursive).

    Where several runs made the same bytes, the latest run's version is shown unless
    ``run_id`` picks one. A parent with no recorded version appears as
    ``{"model_hash": h, "recorded": False}``.
    """
    lineage = _Lineage(versions)
    matches = [v for v in lineage.by_hash.get(model_hash, []) if run_id is None or v.run_id == run_id]
    if not matches:
        raise UnknownModelError(f"no recorded model version has hash {model_hash}")
    chain: list[ModelVersion] = []
    current: ModelVersion | None = matches[-1]
    missing: str | None = None
    while current is not None:
        chain.append(current)
        parent = lineage.parent_key(current)
        missing = current.parent_hash if parent is None else None
        current = lineage.by_key[parent] if parent is not None else None
    node: dict[str, Any] | None = (
        None if missing is None else {"model_hash": missing, "recorded": False, "parent": None}
    )
    for version in reversed(chain):
        node = {
            "model_hash": version.model_hash,
            "recorded": True,
            "run_id": version.run_id,
            "round": version.round,
            "contributors": [c.to_dict() for c in sorted(version.contributors, key=lambda c: c.node_id)],
            **({"trigger": version.trigger.to_dict()} if version.trigger is not None else {}),
            "parent": node,
        }
    assert node is not None
    return node


def _qname(value: str) -> dict[str, str]:
    """A PROV-JSON qualified-name literal (a bare string would be read as text)."""
    return {"$": value, "type": "prov:QUALIFIED_NAME"}


def _qn(kind: str, *parts: object) -> str:
    return "fedgov:" + "/".join([kind, *(quote(str(p), safe="") for p in parts)])


class _ProvBuilder:
    """Accumulates PROV-JSON records with stable, sequential relation ids."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] = {"prefix": {"fedgov": FEDGOV_NS}}
        self._count = 0

    def add(self, section: str, ident: str, attributes: dict[str, Any]) -> None:
        self.doc.setdefault(section, {}).setdefault(ident, attributes)

    def relate(self, relation: str, attributes: dict[str, str]) -> None:
        self._count += 1
        self.doc.setdefault(relation, {})[f"_:{relation}{self._count}"] = attributes


def to_prov_json(
    versions: Iterable[ModelVersion],
    agents_info: Mapping[str, str] | None = None,
    operator: str | None = None,
) -> dict[str, Any]:
    """W3C PROV-JSON of model lineage.

    Entities: model versions (``fedgov:model/<run>/<hash>``; an unrecorded parent is
    ``fedgov:model/<hash>``), node updates
    (``fedgov:update/<digest>``), datasets (``fedgov:dataset/<fingerprint>``).
    Activities: rounds (``fedgov:round/<run>/<n>``). Agents: nodes
    (``fedgov:node/<id>``), teams (``fedgov:team/<name>``), the operator
    (``fedgov:operator/<name>``). Per model version with parent P and updates U:
    ``wasGeneratedBy`` model by round; ``used`` round used P and each U;
    ``wasDerivedFrom`` model from P and from each U, and each U from its dataset;
    ``wasAssociatedWith`` round with the operator and each contributing node;
    ``wasAttributedTo`` each U to its node; ``actedOnBehalfOf`` node for its team.
    A retraining run's trigger (``fedgov:trigger/<seq>``, an activity: the check that decided
    to retrain) ``wasStartedBy``-starts the run's round 0 and informs each of its rounds
    (``wasInformedBy``).
    ``agents_info`` maps a node id, team or operator name to a ``prov:label``.
    Identifier parts are percent-encoded.
    """
    info = dict(agents_info or {})
    lineage = _Lineage(versions)
    b = _ProvBuilder()

    def agent(kind: str, name: str, prov_type: str) -> str:
        ident = _qn(kind, name)
        attributes: dict[str, Any] = {"prov:type": _qname(prov_type), f"fedgov:{kind}": name}
        if name in info:
            attributes["prov:label"] = info[name]
        b.add("agent", ident, attributes)
        return ident

    def model_entity(model_hash: str, run_id: str | None) -> str:
        ident = _qn("model", run_id, model_hash) if run_id else _qn("model", model_hash)
        b.add("entity", ident, {"prov:type": _qname("fedgov:ModelVersion"), "fedgov:model_hash": model_hash})
        return ident

    operator_id = agent("operator", operator, "prov:Person") if operator else None
    delegations: set[tuple[str, str]] = set()
    for version in sorted(lineage.by_key.values(), key=_order):
        model = model_entity(version.model_hash, version.run_id)
        b.doc["entity"][model].update({"fedgov:run_id": version.run_id, "fedgov:round": version.round})
        round_id = _qn("round", version.run_id, version.round)
        b.add("activity", round_id, {
            "prov:type": _qname("fedgov:Round"), "fedgov:run_id": version.run_id, "fedgov:round": version.round,
        })
        b.relate("wasGeneratedBy", {"prov:entity": model, "prov:activity": round_id})
        if version.trigger is not None:
            trigger_id = _qn("trigger", version.trigger.seq)
            b.add("activity", trigger_id, {
                "prov:type": _qname("fedgov:RetrainingTrigger"), "fedgov:seq": version.trigger.seq,
                "fedgov:leaf_hash": version.trigger.leaf_hash, "fedgov:decision": version.trigger.decision,
                "fedgov:fired": ",".join(version.trigger.fired),
            })
            if version.round == 0:
                b.relate("wasStartedBy", {"prov:activity": round_id, "prov:starter": trigger_id})
            b.relate("wasInformedBy", {"prov:informed": round_id, "prov:informant": trigger_id})
        if version.parent_hash is not None:
            parent_key = lineage.parent_key(version)
            parent = model_entity(version.parent_hash, parent_key[0] if parent_key else None)
            b.relate("used", {"prov:activity": round_id, "prov:entity": parent})
            b.relate("wasDerivedFrom", {"prov:generatedEntity": model, "prov:usedEntity": parent})
        if operator_id is not None:
            b.relate("wasAssociatedWith", {"prov:activity": round_id, "prov:agent": operator_id})
        for c in sorted(version.contributors, key=lambda c: c.node_id):
            node = agent("node", c.node_id, "prov:SoftwareAgent")
            team = agent("team", c.team, "prov:Organization")
            if (node, team) not in delegations:
                delegations.add((node, team))
                b.relate("actedOnBehalfOf", {"prov:delegate": node, "prov:responsible": team})
            dataset = _qn("dataset", c.dataset_fingerprint)
            b.add("entity", dataset, {
                "prov:type": _qname("fedgov:Dataset"), "fedgov:fingerprint": c.dataset_fingerprint,
            })
            update = _qn("update", c.update_digest)
            b.add("entity", update, {
                "prov:type": _qname("fedgov:ModelUpdate"),
                "fedgov:update_digest": c.update_digest,
                "fedgov:consent_record_id": c.consent_record_id,
            })
            b.relate("wasAttributedTo", {"prov:entity": update, "prov:agent": node})
            b.relate("wasDerivedFrom", {"prov:generatedEntity": update, "prov:usedEntity": dataset})
            b.relate("used", {"prov:activity": round_id, "prov:entity": update})
            b.relate("wasDerivedFrom", {"prov:generatedEntity": model, "prov:usedEntity": update})
            b.relate("wasAssociatedWith", {"prov:activity": round_id, "prov:agent": node})
    return b.doc
