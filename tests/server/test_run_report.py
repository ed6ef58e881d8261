"""rounds.json reads exactly as `json.dumps(..., indent=2, sort_keys=True)` writes it, though each finished
round is encoded only once (server/report.py, RunReport.as_json)."""

from __future__ import annotations

import io
import json

from flwr.app import ArrayRecord
from rich.console import Console

from server.governed import RoundFacts
from server.report import RunReport


def test_rounds_json_is_the_indented_sorted_dump_after_every_round(tmp_path):
    report = RunReport(tmp_path, 4, "7", console=Console(file=io.StringIO()))
    report.evaluated(0, {"accuracy": 0.5, "loss": 0.7})
    path = tmp_path / "rounds.json"
    for number, failure in enumerate([None, "round 2 failed: 0 valid replies", None, None], start=1):
        facts = RoundFacts(number, [1, 2, 3], [1, 3], ArrayRecord(), failure=failure)
        report.round_selected(facts)
        report.round_checked(facts)
        report.round_aggregated(facts)
        report.save()  # mid-round: this round is not final yet
        assert path.read_text() == json.dumps(json.loads(path.read_text()), indent=2, sort_keys=True)
        report.evaluated(number, {"accuracy": 0.5 + number / 10, "loss": 0.7 - number / 10},
                         overhead={"consent selection": 0.01 * number})
        text = path.read_text()
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True)
        assert [r["round"] for r in json.loads(text)["rounds"]] == list(range(1, number + 1))
    assert json.loads(path.read_text())["rounds"][1]["failure"] == "round 2 failed: 0 valid replies"


def test_rounds_json_without_rounds(tmp_path):
    report = RunReport(tmp_path, 1, "7", console=Console(file=io.StringIO()))
    report.save()
    text = (tmp_path / "rounds.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True)
    assert json.loads(text)["rounds"] == []
