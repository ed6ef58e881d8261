"""The run report: per-round progress on the console and the run directory on disk.

The run directory holds `config.json`, `rounds.json` (rewritten atomically after each
round, so an interrupted run still leaves valid JSON) and `model.pt` at the end.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord
from rich.console import Console
from rich.markup import escape

from fedgov.devices import DEVICE_KEY
from fedgov.protocol import GOVERNANCE_KEY, METRICS_KEY, NUM_EXAMPLES_KEY
from governance.private_files import UMASK_MODE, write_atomic
from server.governed import RoundFacts


def write_json_atomic(path: Path, data: Any) -> None:
    """Write the run directory's JSON atomically, so readers never see half a file (the umask's mode, no fsync)."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True).encode(), mode=UMASK_MODE, durable=False)


def _reply_shape(reply) -> dict[str, Any]:
    """A valid reply in rounds.json: its records and metrics, and the device the node signed for (checked)."""
    content = reply.content
    metrics = dict(content[METRICS_KEY])
    statement = content.get(GOVERNANCE_KEY)
    return {
        "node_id": reply.metadata.src_node_id,
        "device": statement.get(DEVICE_KEY) if statement is not None else None,
        "num_examples": metrics.get(NUM_EXAMPLES_KEY),
        "records": {key: sorted(content[key].keys()) for key in content.keys()},
        "record_types": {key: type(content[key]).__name__ for key in content.keys()},
        "metrics": metrics,
    }


def monitoring_line(metrics: dict[str, Any]) -> str:
    """One line of a round's `monitor.metrics`: drift, the worst node, and who is below the floor."""
    drift = metrics.get("drift", {})
    significant = drift.get("significant", [])
    judged = drift.get("nodes_with_verdict", 0)
    drift_text = (f"significant drift on {len(significant)} of {judged} nodes ({', '.join(significant)})" if significant
                  else f"no significant drift ({judged} nodes judged)")
    worst, flagged = metrics.get("worst"), metrics.get("flagged", [])
    worst_text = f"worst node {worst['node_id']} {worst['value']:.3f}" if worst else "no node metrics"
    floor_text = f"below {metrics.get('floor')}: {', '.join(flagged)}" if flagged else "none below the floor"
    return f"{drift_text}; {worst_text}; {floor_text}"


class RunReport:
    """Collects each round's outcome; prints one progress line per round."""

    def __init__(self, out_dir: Path | None, num_rounds: int, run_id: str = "",
                 console: Console | None = None) -> None:
        self.out_dir = out_dir
        self.run_id = run_id
        self.num_rounds = num_rounds
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.rounds: dict[int, dict[str, Any]] = {}
        self.initial: dict[str, float] | None = None
        self.names: dict[int, str] = {}  # Flower node id -> fedgov node id, once nodes are bound
        self._started = time.monotonic()
        self._round_started = self._started
        self._closed: dict[int, str] = {}  # round -> its text in rounds.json, once evaluated (as_json)

    def nodes_bound(self, names: dict[int, str]) -> None:
        """Nodes are registered and bound: from now on the console names them by their fedgov id."""
        self.names = dict(names)
        self.console.print(f"run {self.run_id}: {len(names)} nodes registered; training starts")

    def name(self, flower_id: int) -> str:
        return f"{self.names[flower_id]} (Flower node {flower_id})" if flower_id in self.names else \
            f"unbound Flower node {flower_id}"

    def round_selected(self, facts: RoundFacts) -> None:
        self._round_started = time.monotonic()
        self.rounds[facts.server_round] = {
            "round": facts.server_round,
            "candidates": facts.candidates,
            "selected": facts.selected,
        }
        self.console.print(f"round {facts.server_round}/{self.num_rounds}: training {len(facts.selected)} "
                           f"selected nodes…")

    def round_checked(self, facts: RoundFacts) -> None:
        # Before aggregation: FedTrimmedAvg and FedMedian pop the arrays out of replies.
        self.rounds[facts.server_round]["replies"] = [_reply_shape(r) for r in facts.valid]

    def masked_replies(self, server_round: int, replies: list[dict[str, Any]]) -> None:
        """A SecAgg+ round (server/secagg.py): the nodes whose masked updates are in the sum; no update seen."""
        self.rounds[server_round]["replies"] = replies

    def round_aggregated(self, facts: RoundFacts) -> None:
        entry = self.rounds[facts.server_round]
        entry["rejected"] = [{"node_id": r.node_id, "reason": r.reason} for r in facts.rejected]
        entry["status"] = "failed" if facts.failure else "ok"
        entry["failure"] = facts.failure
        entry["train_metrics"] = dict(facts.train_metrics) if facts.train_metrics else {}
        for rejection in facts.rejected:  # a reason quotes what the node sent: no console markup from it
            self.console.print(f"  [yellow]rejected[/] {escape(self.name(rejection.node_id))}: "
                               f"{escape(rejection.reason)}")
        if facts.failure:
            self.console.print(f"  [red]{escape(facts.failure)}[/]")

    def evaluated(self, server_round: int, metrics: dict[str, float],
                  overhead: dict[str, float] | None = None, monitoring: dict[str, Any] | None = None) -> None:
        """Record the central evaluation; round 0 is the initial model. `overhead` is the
        time governance spent in the round, by step; `monitoring` the round's recorded
        `monitor.metrics`, shown as one more line."""
        if server_round == 0:
            self.initial = metrics
            self.console.print(
                f"initial model: accuracy {metrics['accuracy']:.3f}, loss {metrics['loss']:.3f}"
            )
            return
        entry = self.rounds[server_round]
        entry["eval"] = metrics
        entry["governance_seconds"] = {k: round(v, 6) for k, v in (overhead or {}).items()}
        entry["seconds"] = round(time.monotonic() - self._round_started, 3)
        self.console.print(
            f"round {server_round}/{self.num_rounds}: {len(entry['replies'])}/{len(entry['selected'])} "
            f"nodes aggregated, {len(entry['rejected'])} rejected, "
            f"accuracy {metrics['accuracy']:.3f}, loss {metrics['loss']:.3f}, {entry['seconds']:.1f} s"
        )
        if monitoring is not None:
            entry["monitoring"] = monitoring_line(monitoring)
            self.console.print(f"  monitoring: {entry['monitoring']}")
        self.save()

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "initial_eval": self.initial,
            "rounds": [self.rounds[r] for r in sorted(self.rounds)],
            "wall_seconds": round(time.monotonic() - self._started, 3),
        }

    def save(self) -> None:
        if self.out_dir is not None:
            write_atomic(self.out_dir / "rounds.json", self.as_json().encode(), mode=UMASK_MODE, durable=False)

    def as_json(self) -> str:
        """`as_dict()` as `write_json_atomic` writes it (indented, keys sorted), byte for byte.

        rounds.json is rewritten after every round, and Python's indenting encoder is slow: at 100 nodes
        the whole file took 27 ms by round 5, on the coordinator's path between rounds, and grew with
        every round. A round is final once evaluated, so its text is encoded once and kept.
        """
        data = self.as_dict()
        rounds = [self._round_text(entry) for entry in data.pop("rounds")]
        text = json.dumps({**data, "rounds": []}, indent=2, sort_keys=True)
        if not rounds:
            return text
        return text.replace('"rounds": []', '"rounds": [\n    ' + ",\n    ".join(rounds) + "\n  ]", 1)

    def _round_text(self, entry: dict[str, Any]) -> str:
        """One round's entry as it reads inside the file's `rounds` list (two levels of indent)."""
        text = self._closed.get(entry["round"])
        if text is None:
            text = json.dumps(entry, indent=2, sort_keys=True).replace("\n", "\n    ")  # JSON strings hold no newline
            if "eval" in entry:  # evaluated: nothing changes it any more
                self._closed[entry["round"]] = text
        return text

    def save_model(self, arrays: ArrayRecord) -> None:
        if self.out_dir is not None:
            import torch

            torch.save(arrays.to_torch_state_dict(), self.out_dir / "model.pt")
