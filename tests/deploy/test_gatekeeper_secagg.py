"""The gatekeeper's round count under SecAgg+: a round is four train messages, of which one trains."""

from __future__ import annotations

import pytest
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.supercore.task_identity import TaskIdentity

from deploy.gatekeeper import trains


@pytest.fixture(autouse=True)
def server_identity(monkeypatch):
    for attribute, value in (("_run_id", 7), ("_task_id", 11), ("_node_id", SUPERLINK_NODE_ID)):
        monkeypatch.setattr(TaskIdentity, attribute, value)


def stage_message(stage: str | None) -> Message:
    records = RecordDict({RECORD_KEY_CONFIGS: ConfigRecord({Key.STAGE: stage})} if stage else
                         {"config": ConfigRecord({"lr": 0.1})})
    return Message(records, dst_node_id=5, message_type="train", group_id="1")


def test_under_secagg_only_the_masked_vectors_stage_counts_as_training():
    counted = [trains(stage_message(s), {"secagg": True}) for s in
               (Stage.SETUP, Stage.SHARE_KEYS, Stage.COLLECT_MASKED_VECTORS, Stage.UNMASK)]
    assert counted == [False, False, True, False]


def test_anything_else_counts_so_a_coordinator_cannot_dodge_the_cap():
    assert trains(stage_message(None), {"secagg": True})  # no SecAgg+ record: counted
    assert trains(stage_message("retrain-everything"), {"secagg": True})  # an unknown stage: counted
    for stage in (Stage.SETUP, Stage.UNMASK, None):  # without secagg in the run, every train message counts
        assert trains(stage_message(stage), {"secagg": False}) and trains(stage_message(stage), {})
