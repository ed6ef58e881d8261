"""The coordinator's audit trail: every run and round of a governed run, in the ledger.

It is three things the governed strategy calls: the consent-enforcing selector, the
reply signature check, and a round observer. Each ledger write happens before the step
it records goes on, and a failed write raises, so a round never runs unrecorded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections import defaultdict
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator, Sequence

from flwr.app import ArrayRecord, Message

from client.attestation import GOVERNANCE_KEY, named_arrays, reply_metrics_digest
from fedgov.settings import RunSettings
from governance import consent_store, entry_types as et
from governance.archive import archive_model
from governance.consent import VALID, find_valid_consent, records_by_principal
from governance.digests import arrays_digest
from governance.errors import FedgovError
from governance.fingerprint import DatasetFingerprint
from governance.identity import NodeRegistry, ReplyRejected, reply_signing_payload, verify_reply
from governance.ledger import EntryDraft, Ledger
from governance.selection import SelectionError, select_nodes
from governance.verify.canonical import canonical_bytes
from server.governed import RoundFacts
from server.replies import DECODE_ERRORS, NUM_EXAMPLES_KEY, NamedArrays
from simulations.scenarios import parse_node_rounds


MAX_FINGERPRINT_TEXT = 65536  # an honest fingerprint is a few hundred characters


def weight_problem(num_examples: int, fingerprint: DatasetFingerprint) -> str | None:
    """Weight follows evidence: the examples a node claims are the rows of the dataset it signed for.

    FedAvg weighs each update by `num-examples`; unchecked, one node claiming 10^6 examples
    on 91 rows takes the average. The claim must equal the signed fingerprint's row count,
    and that count must equal the sum of its label counts.
    """
    if sum(fingerprint.label_counts.values()) != fingerprint.rows:
        return (f"dataset fingerprint claims {fingerprint.rows} rows but its label counts sum to "
                f"{sum(fingerprint.label_counts.values())}")
    if num_examples != fingerprint.rows:
        return (f"num-examples {num_examples} disagrees with the {fingerprint.rows} rows of the node's signed "
                "dataset fingerprint (weight must follow evidence)")
    return None


def config_hash(run_config: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(run_config)).hexdigest()


class LedgerRecorder:
    """Writes a governed run to the ledger; see docs/governance.md for every entry."""

    def __init__(self, ledger: Ledger, run_id: str, settings: RunSettings, binding: dict[int, str],
                 registry: NodeRegistry) -> None:
        self.ledger = ledger
        self.run_id = run_id
        self.settings = settings
        self.binding = binding
        self.registry = registry
        self.config_hash = config_hash(settings.to_run_config())
        self._revocations = parse_node_rounds(settings.revoke, "revoke")
        self._consent_used: dict[str, str | None] = {}
        self._consent_cache: dict[int, Any] = {}  # seq -> decrypted consent event
        self._verified: dict[int, dict[str, Any]] = {}
        self._model_hash = ""
        self.overhead: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    @contextmanager
    def _timed(self, server_round: int, what: str) -> Iterator[None]:
        """Accumulate where governance spends its time, per round, for the benchmark."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.overhead[server_round][what] += time.perf_counter() - start

    def _draft(self, entry_type: str, payload: dict[str, Any], *, round_: int | None = None,
               node_id: str = "", model: str = "", scope: str | None = None) -> EntryDraft:
        return EntryDraft(entry_type, payload, scope=scope or et.run_scope(self.run_id), run_id=self.run_id,
                          round=round_, node_id=node_id, model_hash=model, config_hash=self.config_hash)

    # -- run -----------------------------------------------------------------------------

    def run_started(self, initial: ArrayRecord, app_hash: str, strategy: dict[str, Any]) -> None:
        self._model_hash = archive_model(self.ledger, named_arrays(initial))
        self.ledger.append([self._draft(et.RUN_STARTED, {
            "operator": self.settings.operator, "purpose": self.settings.purpose,
            "config": self.settings.to_run_config(), "config_hash": self.config_hash,
            "app_hash": app_hash, "strategy": strategy, "seed": self.settings.seed,
            "expected_nodes": self.settings.num_partitions, "initial_model_hash": self._model_hash,
            "binding": {str(k): v for k, v in sorted(self.binding.items())},
        }, model=self._model_hash)])

    def run_finished(self, status: str, reason: str = "") -> None:
        self.ledger.append([self._draft(et.RUN_FINISHED, {
            "status": status, "reason": reason, "final_model_hash": self._model_hash})])
        self.ledger.checkpoint()

    # -- selection -----------------------------------------------------------------------

    def _apply_scheduled_revocations(self, server_round: int) -> None:
        """Rehearsal: a node withdraws consent before this round (`--revoke NODE@ROUND`)."""
        due = [node for node, at_round in self._revocations.items() if at_round == server_round]
        if not due:
            return
        records = records_by_principal(consent_store.load_records(self.ledger, self._consent_cache).values())
        now = datetime.now(timezone.utc)
        for node in due:
            check = find_valid_consent(records.get(node, []), node, self.settings.purpose, now)
            if check.state == VALID:
                consent_store.withdraw(self.ledger, check.record_id, "consent withdrawn mid-run (scenario)",
                                       actor=f"node:{node}")

    def select(self, server_round: int, candidates: Sequence[int]) -> list[int]:
        """Only nodes with valid consent for the run's purpose may be sent this round."""
        with self._timed(server_round, "consent selection (read, draw, write)"):
            return self._select(server_round, candidates)

    def _select(self, server_round: int, candidates: Sequence[int]) -> list[int]:
        self._apply_scheduled_revocations(server_round)
        records = consent_store.load_records(self.ledger, self._consent_cache)
        now = datetime.now(timezone.utc)
        flower_of = {self.binding[c]: c for c in candidates if c in self.binding}
        unbound = sorted(c for c in candidates if c not in self.binding)
        by_principal = records_by_principal(records.values())
        checks = {p: find_valid_consent(by_principal.get(p, []), p, self.settings.purpose, now) for p in flower_of}
        try:
            record = select_nodes(sorted(flower_of), checks, self.settings.fraction_train,
                                  self.settings.min_nodes(), self.settings.seed, server_round)
        except SelectionError as err:
            self.ledger.append([self._draft(et.ROUND_FAILED, {
                "reason": str(err), "checks": {p: c.to_dict() for p, c in sorted(checks.items())},
                "input_model_hash": self._model_hash}, round_=server_round, model=self._model_hash)])
            raise
        self._consent_used = {p: record.checks[p]["record_id"] for p in record.selected}
        self.ledger.append([self._draft(et.ROUND_SELECTION, {
            **record.to_dict(), "purpose": self.settings.purpose, "checked_at": now.isoformat(),
            "unbound_flower_nodes": [str(c) for c in unbound],
            "flower_node_ids": {p: str(flower_of[p]) for p in record.selected},
        }, round_=server_round, model=self._model_hash)])
        return [flower_of[p] for p in record.selected]

    # -- replies -------------------------------------------------------------------------

    def check_reply(self, server_round: int, reply: Message, arrays: NamedArrays) -> str | None:
        """Verify the node's signed statement; the reason when it fails, else None."""
        with self._timed(server_round, "reply digests and signature checks"):
            return self._check_reply(server_round, reply, arrays)

    def _check_reply(self, server_round: int, reply: Message, arrays: NamedArrays) -> str | None:
        src = reply.metadata.src_node_id
        expected = self.binding.get(src, "")
        statement = reply.content.get(GOVERNANCE_KEY)
        if statement is None:
            return "unsigned: the reply carries no governance statement"
        if statement.get("node-id") != expected:
            return f"node id mismatch: signed as {str(statement.get('node-id'))[:80]!r}, bound to {expected!r}"
        fingerprint_text = statement.get("fingerprint", "{}")
        if not isinstance(fingerprint_text, str) or len(fingerprint_text) > MAX_FINGERPRINT_TEXT:
            return f"bad governance statement: the fingerprint is not text of at most {MAX_FINGERPRINT_TEXT} characters"
        try:
            fingerprint = DatasetFingerprint.from_dict(json.loads(fingerprint_text))
            update, metrics = arrays_digest(arrays), reply_metrics_digest(reply.content)
            payload = reply_signing_payload(self.run_id, server_round, update, fingerprint.digest, metrics)
            signature = statement.get("signature")
            verify_reply(self.registry, expected, signature if isinstance(signature, bytes) else None, payload)
        except ReplyRejected as err:
            return f"{err.reason}: {err}"
        except (FedgovError, *DECODE_ERRORS) as err:  # JSONDecodeError is a ValueError
            return f"bad governance statement: {type(err).__name__}: {str(err)[:200]}"
        problem = weight_problem(reply.content["metrics"][NUM_EXAMPLES_KEY], fingerprint)
        if problem:
            return problem
        self._verified[src] = {"update_digest": update, "metrics_digest": metrics,
                               "signature": base64.b64encode(signature).decode(),
                               "dataset_fingerprint": fingerprint.to_dict()}
        return None

    # -- round observer ------------------------------------------------------------------

    def round_selected(self, facts: RoundFacts) -> None:
        """Selection is recorded by `select`, before any instruction is built."""

    def round_checked(self, facts: RoundFacts) -> None:
        """Replies are recorded with the aggregation, in one batch."""

    def round_aggregated(self, facts: RoundFacts) -> None:
        with self._timed(facts.server_round, "round record and model archive"):
            self._record_round(facts)

    def _record_round(self, facts: RoundFacts) -> None:
        r = facts.server_round
        input_hash = self._model_hash  # the model sent this round: the last one archived
        drafts = []
        contributors = []
        for reply in facts.valid:
            node = self.binding[reply.metadata.src_node_id]
            metrics = dict(reply.content["metrics"])
            contributors.append(node)
            drafts.append(self._draft(et.ROUND_REPLY, {
                "node_id": node, "flower_node_id": str(reply.metadata.src_node_id),
                "team": self.registry.get(node).team, "num_examples": metrics["num-examples"],
                "metrics": metrics, "consent_record_id": self._consent_used.get(node),
                **self._verified.pop(reply.metadata.src_node_id),
            }, round_=r, node_id=node, model=input_hash, scope=et.node_scope(node)))
        for rejection in facts.rejected:
            node = self.binding.get(rejection.node_id, "")
            drafts.append(self._draft(et.ROUND_REJECTED, {
                "node_id": node, "flower_node_id": str(rejection.node_id), "reason": rejection.reason,
            }, round_=r, node_id=node, model=input_hash, scope=et.node_scope(node) if node else None))
        if facts.failure or facts.output_arrays is None:
            drafts.append(self._draft(et.ROUND_FAILED, {
                "reason": facts.failure or "the strategy returned no model", "input_model_hash": input_hash,
            }, round_=r, model=input_hash))
        else:
            output_hash = archive_model(self.ledger, named_arrays(facts.output_arrays))
            drafts.append(self._draft(et.ROUND_AGGREGATED, {
                "input_model_hash": input_hash, "output_model_hash": output_hash,
                "contributors": sorted(contributors),
                "train_metrics": dict(facts.train_metrics) if facts.train_metrics else {},
            }, round_=r, model=output_hash))
            self._model_hash = output_hash
        self._verified.clear()
        self.ledger.append(drafts)

    def evaluated(self, server_round: int, metrics: dict[str, float]) -> None:
        """The round's central evaluation, then a signed checkpoint closes the round."""
        with self._timed(server_round, "evaluation record and signed checkpoint"):
            self.ledger.append([self._draft(et.ROUND_EVALUATED, {"model_hash": self._model_hash, "metrics": metrics},
                                            round_=server_round, model=self._model_hash)])
            self.ledger.checkpoint()
