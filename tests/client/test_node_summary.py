"""What a node shares for monitoring: its site decides; a summary of the rows it trained on, signed, never rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from client.app import train_handler
from fedgov.local_data import schema_for
from fedgov.models import build_model
from fedgov.protocol import MONITOR_REFERENCE_KEY, MONITORED_RECORDS, SUMMARY_KEY, SUMMARY_TEXT_KEY
from fedgov.settings import RunSettings
from governance.identity import NodeKey, NodeRegistry
from server.app import monitoring_reference
from server.overhead import Overhead
from server.replies import model_spec, split_replies
from server.reply_verifier import ReplyVerifier
from server.summary_checks import SummaryCheck
from tests.client.test_app import FLOWER_ID, RUN, _context, _message, _site

MONITORING = '\n[monitoring]\nshare = {share}\nmin_count = {k}\nnoise = "{noise}"\nnoise_scale = {scale}\n'


def _node(tmp_path: Path, monitoring: str | None) -> tuple[NodeKey, dict]:
    site = _site(tmp_path)
    if monitoring is not None:
        site.write_text(site.read_text() + monitoring)
    key = NodeKey.load_or_create(tmp_path / "node" / "node.key")
    return key, {"fedgov-node-id": "radiology", "fedgov-key": str(tmp_path / "node" / "node.key"),
                 "fedgov-site": str(site)}


def _instruction(settings: RunSettings):
    model = ArrayRecord(build_model("breast-cancer", 42).state_dict())
    config = ConfigRecord({"server-round": 1, MONITOR_REFERENCE_KEY: monitoring_reference(settings).to_text()})
    return _message(RecordDict({"arrays": model, "config": config}), 1, FLOWER_ID), model


def _train(tmp_path: Path, monitoring: str | None):
    settings = RunSettings.from_run_config()
    key, config = _node(tmp_path, monitoring)
    instruction, model = _instruction(settings)
    reply = train_handler(instruction, _context(config))
    assert not reply.has_error(), reply.error
    return key, model, _message(reply.content, FLOWER_ID, 1, reply_to="m1"), settings


def test_a_sharing_site_sends_a_signed_summary_of_its_training_rows_at_its_own_higher_minimum(tmp_path):
    key, model, reply, settings = _train(tmp_path, MONITORING.format(share="true", k=10, noise="none", scale=0.0))
    summary = json.loads(reply.content[SUMMARY_KEY][SUMMARY_TEXT_KEY])
    assert summary["rows"] == 48 and summary["min_count"] == 10  # the site's 10 over the run's 5
    assert set(summary["features"]) == set(schema_for("breast-cancer").feature_names)
    counts = [c for bins in summary["features"].values() for c in bins] + list(summary["labels"].values())
    assert all(c is None or c >= 10 for c in counts) and None in counts
    registry = NodeRegistry()
    registry.register("radiology", key.public_bytes(), "radiology")
    [(checked, arrays)], rejected = split_replies([reply], model_spec(model), MONITORED_RECORDS)
    assert rejected == []
    assert SummaryCheck(monitoring_reference(settings), 5).check(1, checked, arrays) is None
    verifier = ReplyVerifier(str(RUN), {FLOWER_ID: "radiology"}, registry, Overhead())
    assert verifier.check(1, checked, arrays) is None
    assert verifier.take(FLOWER_ID)["summary"] == summary


def test_a_site_without_a_monitoring_table_shares_nothing(tmp_path):
    _, _, reply, _ = _train(tmp_path, None)
    assert SUMMARY_KEY not in reply.content


def test_a_site_that_says_no_shares_nothing(tmp_path):
    _, _, reply, _ = _train(tmp_path, MONITORING.format(share="false", k=5, noise="none", scale=0.0))
    assert SUMMARY_KEY not in reply.content


def test_a_sites_noise_is_applied_and_recorded(tmp_path):
    _, _, reply, _ = _train(tmp_path, MONITORING.format(share="true", k=5, noise="laplace", scale=2.0))
    summary = json.loads(reply.content[SUMMARY_KEY][SUMMARY_TEXT_KEY])
    assert summary["noise"] == {"kind": "laplace", "scale": 2}


@pytest.mark.parametrize("table, message", [
    ('\n[monitoring]\nshare = true\n', "lacks min_count"),
    (MONITORING.format(share="true", k=0, noise="none", scale=0.0), "min_count must be a whole number >= 1"),
    (MONITORING.format(share="true", k=5, noise="fog", scale=1.0), "noise must be one of"),
    (MONITORING.format(share="true", k=5, noise="laplace", scale=0.0), "needs a noise_scale > 0"),
])
def test_a_malformed_monitoring_table_is_an_error_reply_naming_it(tmp_path, table, message):
    settings = RunSettings.from_run_config()
    _, config = _node(tmp_path, table)
    reply = train_handler(_instruction(settings)[0], _context(config))
    assert reply.has_error() and message in reply.error.reason

