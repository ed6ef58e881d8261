"""What the coordinator can see of a SecAgg+ round: who completed each stage, and what each node signed.

`StageWatch` is a Grid between Flower's `SecAggPlusWorkflow` and the real grid. The workflow
talks to nodes in four stages (setup, share keys, collect masked vectors, unmask); the watch
notes which nodes answered each, and checks every masked vector's signed statement
(`MaskedReplyChecker`) before the workflow sums it, and the shape of every other stage's reply
(`stage_reply_problem`: Flower's workflow indexes and zips what it gets, so one malformed reply
would end the run). A reply that fails its check is handed to the workflow as an error reply:
SecAgg+ then treats the node as dropped, leaves its masked vector out of the sum and removes its
masks with its neighbours' shares, the protocol's own dropout path. Nothing here sees an update
unmasked.
"""

from __future__ import annotations

import base64
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from flwr.app import Error, Message
from flwr.common.constant import ErrorCode
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.compat.common.parameter import bytes_to_ndarray
from flwr.serverapp import Grid

from fedgov.devices import DEVICE_KEY, device_problem
from fedgov.protocol import GOVERNANCE_KEY, LOCAL_ACCURACY_KEY, LOCAL_LOSS_KEY
from fedgov.secagg import MAX_WEIGHT, fit_metrics_digest, masked_digest
from governance.errors import FedgovError
from governance.fingerprint import DatasetFingerprint
from governance.identity import NodeRegistry, ReplyRejected, reply_signing_payload, verify_reply
from server.grid_view import DelegatingGrid
from server.replies import DECODE_ERRORS
from server.reply_verifier import MAX_FINGERPRINT_TEXT, weight_problem

STAGES = (Stage.SETUP, Stage.SHARE_KEYS, Stage.COLLECT_MASKED_VECTORS, Stage.UNMASK)
FIT_METRICS = ("train-loss", LOCAL_LOSS_KEY, LOCAL_ACCURACY_KEY)  # what client.secagg.SecAggNode reports
# The records of a masked-vectors reply (Flower's FitRes layout, the masks, the node's statement); anything
# else could carry data off the node.
REPLY_RECORDS = {"config": {RECORD_KEY_CONFIGS, "fitres.metrics", "fitres.status", GOVERNANCE_KEY},
                 "metric": {"fitres.num_examples"}, "array": {"fitres.parameters"}}


@dataclass
class RoundView:
    """One round as the coordinator saw it: node ids that answered each stage, rejections, statements."""

    stages: dict[str, list[int]] = field(default_factory=dict)
    dropped: dict[int, str] = field(default_factory=dict)  # Flower node id -> why it left the protocol
    statements: dict[int, dict[str, Any]] = field(default_factory=dict)  # the verified masked-vector statements
    sampled: set[int] = field(default_factory=set)  # the nodes the round's setup went to


class MaskedReplyChecker:
    """Checks a masked-vectors reply: its records, shapes, metrics and the node's signature over them."""

    def __init__(self, run_id: str, binding: Mapping[int, str], registry: NodeRegistry,
                 shapes: list[tuple[int, ...]]) -> None:
        self.run_id = run_id
        self.binding = binding
        self.registry = registry
        self.shapes = shapes

    def check(self, server_round: int, reply: Message) -> tuple[str | None, dict[str, Any]]:
        """(reason, {}) when the reply must be left out, else (None, the statement to record)."""
        try:
            return self._check(server_round, reply)
        except DECODE_ERRORS as err:  # hostile bytes in what is parsed here: a named rejection
            return f"malformed masked reply ({type(err).__name__})", {}

    def _check(self, server_round: int, reply: Message) -> tuple[str | None, dict[str, Any]]:
        content, node = reply.content, self.binding.get(reply.metadata.src_node_id, "")
        for kind, allowed in REPLY_RECORDS.items():
            extra = set(getattr(content, f"{kind}_records")) - allowed
            if extra:
                return f"unexpected records in a masked reply: {sorted(extra)[:5]}", {}
        masked = content.config_records[RECORD_KEY_CONFIGS][Key.MASKED_PARAMETERS]
        if not isinstance(masked, list) or len(masked) != len(self.shapes) + 1 or \
                not all(isinstance(b, bytes) for b in masked):
            return "malformed masked vector: not one byte string per model array plus the weight", {}
        arrays = [bytes_to_ndarray(b) for b in masked]
        if [a.shape for a in arrays] != [(1,), *self.shapes] or any(a.dtype.kind not in "iu" for a in arrays):
            return "malformed masked vector: shapes or integer types differ from the model's", {}
        metrics = dict(content.config_records["fitres.metrics"])
        if sorted(metrics) != sorted(FIT_METRICS) or \
                not all(isinstance(v, float) and math.isfinite(v) for v in metrics.values()) or \
                not 0.0 <= metrics[LOCAL_ACCURACY_KEY] <= 1.0:
            return f"bad fit metrics: expected finite {', '.join(FIT_METRICS)}", {}
        num_examples = content.metric_records["fitres.num_examples"]["num_examples"]
        if not isinstance(num_examples, int) or not 0 < num_examples <= MAX_WEIGHT:
            return (f"num-examples {num_examples!r} outside (0, {MAX_WEIGHT:g}]: SecAgg+'s weight would "
                    "overflow its quantization"), {}
        statement = content.config_records.get(GOVERNANCE_KEY)
        if statement is None:
            return "unsigned: the masked reply carries no governance statement", {}
        if statement.get("node-id") != node:
            return f"node id mismatch: signed as {str(statement.get('node-id'))[:80]!r}, bound to {node!r}", {}
        fingerprint_text = statement.get("fingerprint", "{}")
        if not isinstance(fingerprint_text, str) or len(fingerprint_text) > MAX_FINGERPRINT_TEXT:
            return "bad governance statement: the fingerprint is not text of bounded size", {}
        device = statement.get(DEVICE_KEY)  # optional, as in a plain reply (fedgov/devices.py)
        if device is not None and device_problem(device):
            return device_problem(device), {}
        signature = statement.get("signature")
        try:
            fingerprint = DatasetFingerprint.from_dict(json.loads(fingerprint_text))
            digest, metrics_digest = masked_digest(masked), fit_metrics_digest(metrics, num_examples)
            payload = reply_signing_payload(self.run_id, server_round, digest, fingerprint.digest, metrics_digest,
                                            device=device)
            verify_reply(self.registry, node, signature if isinstance(signature, bytes) else None, payload)
        except ReplyRejected as err:
            return f"{err.reason}: {err}", {}
        except FedgovError as err:
            return f"bad governance statement: {type(err).__name__}: {str(err)[:200]}", {}
        problem = weight_problem(num_examples, fingerprint)
        if problem:
            return problem, {}
        return None, {"masked_update_digest": digest, "metrics_digest": metrics_digest, "metrics": metrics,
                      "num_examples": num_examples, "signature": base64.b64encode(signature).decode(),
                      "dataset_fingerprint": fingerprint.to_dict(), **({"device": device} if device is not None else {})}


def _ints(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def _byte_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, bytes) for v in value)


def stage_reply_problem(stage: str, reply: Message, sampled: set[int]) -> str | None:
    """Why a setup, share-keys or unmask reply would break Flower's workflow (it indexes and zips what it gets,
    so one node's malformed reply ended the whole run), or None. `sampled`: the nodes of the round's setup."""
    configs = reply.content.config_records.get(RECORD_KEY_CONFIGS)
    if configs is None:
        return f"malformed SecAgg+ {stage} reply: no {RECORD_KEY_CONFIGS} record"
    if stage == Stage.SETUP:
        if not all(isinstance(configs.get(k), bytes) for k in (Key.PUBLIC_KEY_1, Key.PUBLIC_KEY_2)):
            return f"malformed SecAgg+ {stage} reply: not two public keys"
    elif stage == Stage.SHARE_KEYS:
        dsts, texts = configs.get(Key.DESTINATION_LIST), configs.get(Key.CIPHERTEXT_LIST)
        if not _ints(dsts) or not _byte_strings(texts) or len(dsts) != len(texts) or not set(dsts) <= sampled:
            return f"malformed SecAgg+ {stage} reply: not one ciphertext per destination among the round's nodes"
    elif stage == Stage.UNMASK:
        owners, shares = configs.get(Key.NODE_ID_LIST), configs.get(Key.SHARE_LIST)
        if not _ints(owners) or not _byte_strings(shares) or len(owners) != len(shares) \
                or not set(owners) <= sampled or any(len(b) < 20 or (len(b) - 4) % 16 for b in shares):
            return f"malformed SecAgg+ {stage} reply: not one share (4 + 16k bytes) per node of the round"
    return None


def _odd_share_lengths(replies: dict[int, Message]) -> dict[int, str]:
    """Of some well-formed unmask replies (by key), those whose share for some node is not the length most replies
    give it (Flower reads the number of chunks of a secret from the first share it holds: a share of another
    length would end the run)."""
    lengths: dict[int, dict[int, int]] = defaultdict(dict)  # owner -> reply key -> share length
    for key, reply in replies.items():
        configs = reply.content.config_records[RECORD_KEY_CONFIGS]
        for owner, share in zip(configs[Key.NODE_ID_LIST], configs[Key.SHARE_LIST]):
            lengths[owner][key] = len(share)
    odd: dict[int, str] = {}
    for owner, by_reply in lengths.items():
        counts: dict[int, int] = defaultdict(int)
        for length in by_reply.values():
            counts[length] += 1
        usual = max(sorted(counts), key=lambda length: counts[length])
        for key, length in by_reply.items():
            if length != usual:
                odd.setdefault(key, f"malformed SecAgg+ unmask reply: a share of {length} bytes for node {owner}, "
                                    f"whose other shares have {usual}")
    return odd


def stage_of(messages: list[Message]) -> str | None:
    for msg in messages:
        configs = msg.content.config_records.get(RECORD_KEY_CONFIGS)
        if configs is not None and configs.get(Key.STAGE) in STAGES:
            return str(configs[Key.STAGE])
    return None


class StageWatch(DelegatingGrid):
    """Delegates to the real grid; notes each SecAgg+ stage's answers and checks the masked vectors."""

    def __init__(self, grid: Grid, checker: MaskedReplyChecker) -> None:
        super().__init__(grid)
        self.checker = checker
        self.rounds: dict[int, RoundView] = defaultdict(RoundView)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        messages = list(messages)
        stage = stage_of(messages)  # read before sending: a node's mod pops the stage from what it gets
        replies = list(self._grid.send_and_receive(messages, timeout=timeout))
        if stage is None:
            return replies
        server_round = int(messages[0].metadata.group_id)
        view = self.rounds[server_round]
        if stage == Stage.SETUP:
            view.sampled = {m.metadata.dst_node_id for m in messages}
        sent = {m.metadata.message_id: m for m in messages}
        out, answered = [], set()
        problems = self._stage_problems(stage, replies, sent, view.sampled)
        for reply in replies:
            instruction = sent.get(reply.metadata.reply_to_message_id)
            node = instruction.metadata.dst_node_id if instruction is not None else reply.metadata.src_node_id
            if reply.has_error():
                view.dropped.setdefault(node, f"dropout at SecAgg+ stage {stage}: {reply.error.reason[:200]}")
            elif stage != Stage.COLLECT_MASKED_VECTORS and id(reply) in problems:
                view.dropped[node] = problems[id(reply)]
                if instruction is None:
                    continue
                reply = Message(Error(code=ErrorCode.MOD_FAILED_PRECONDITION, reason=f"rejected: {view.dropped[node]}"),
                                reply_to=instruction)
            elif stage == Stage.COLLECT_MASKED_VECTORS:
                reason, statement = self.checker.check(server_round, reply)
                if reason is not None:
                    view.dropped[node] = reason
                    if instruction is None:  # answers nothing sent: no error reply can be made, so it is left out
                        continue
                    reply = Message(Error(code=ErrorCode.MOD_FAILED_PRECONDITION, reason=f"rejected: {reason}"),
                                    reply_to=instruction)
                else:
                    view.statements[node] = statement
                    answered.add(node)
            else:
                answered.add(node)
            out.append(reply)
        for m in messages:
            if m.metadata.dst_node_id not in answered:
                view.dropped.setdefault(m.metadata.dst_node_id, f"dropout at SecAgg+ stage {stage}: no reply "
                                                                "within the time-out")
        view.stages[stage] = sorted(answered)
        return out

    @staticmethod
    def _stage_problems(stage: str, replies: list[Message], sent: dict[str, Message],
                        sampled: set[int]) -> dict[int, str]:
        """id(reply) -> why, for the setup, share-keys and unmask replies Flower's workflow could not take."""
        if stage == Stage.COLLECT_MASKED_VECTORS:
            return {}
        problems: dict[int, str] = {}
        fine: dict[int, Message] = {}
        for reply in replies:
            if reply.has_error():
                continue
            try:
                problem = stage_reply_problem(stage, reply, sampled)
            except DECODE_ERRORS as err:
                problem = f"malformed SecAgg+ {stage} reply ({type(err).__name__})"
            if problem is None:
                fine[id(reply)] = reply
            else:
                problems[id(reply)] = problem
        if stage == Stage.UNMASK:
            problems |= _odd_share_lengths(fine)
        return problems
