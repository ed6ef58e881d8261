"""`fedgov run`: launch a governed run on a deployment, follow it, and say truthfully how it ended.

`flwr run` exits 0 even when the ServerApp failed (Flower's SuperExec discards the exit status).
So fedgov talks to the SuperLink's Control API itself: it waits for enough nodes to be online,
starts the run with fedgov's app bundle and the run's settings, streams the ServerApp's log
(one line per round), then reads the run's final status and exits non-zero unless it completed,
with Flower's `details` (the ServerApp's exception, e.g. a consent refusal) as the one error line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from governance.errors import PolicyError


@dataclass(frozen=True)
class Outcome:
    """How a run ended, as the SuperLink recorded it."""

    run_id: int
    status: str
    sub_status: str
    details: str

    @property
    def completed(self) -> bool:
        return self.status == "finished" and self.sub_status == "completed"


def online_nodes(client: Any) -> list[str]:
    """Names (fedgov ids) of the registered nodes the SuperLink sees online now."""
    from flwr.proto.control_pb2 import ListNodesRequest

    return sorted(n.name or str(n.node_id) for n in client.ListNodes(ListNodesRequest()).nodes_info
                  if n.status == "online")


def wait_for_nodes(client: Any, minimum: int, timeout: float, poll: float = 1.0) -> list[str]:
    """Return once `minimum` nodes are online; PolicyError naming who is there after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        online = online_nodes(client)
        if len(online) >= minimum:
            return online
        if time.monotonic() >= deadline:
            raise PolicyError(f"only {len(online)} of the {minimum} nodes this run needs are connected after "
                              f"{timeout:g} s ({', '.join(online) or 'none'}); start the missing nodes with "
                              "`fedgov node join`, or lower --nodes")
        time.sleep(poll)


def start(client: Any, bundle: bytes, digest: str, overrides: Mapping[str, Any]) -> int:
    """Start a run of `bundle` (whose SHA-256 is `digest`) with these run-config overrides; return its run id."""
    from flwr.common.serde import fab_to_proto, user_config_to_proto
    from flwr.proto.control_pb2 import StartRunRequest
    from flwr.supercore.fab import Fab

    fab = Fab(digest, bundle, {})
    response = client.StartRun(StartRunRequest(fab=fab_to_proto(fab), override_config=user_config_to_proto(
        dict(overrides))))
    if not response.run_id:
        raise PolicyError("the SuperLink started no run")
    return int(response.run_id)


def follow(client: Any, run_id: int, echo: Callable[[str], None]) -> Outcome:
    """Print the ServerApp's log as it comes; when the stream ends (the run finished), read its status."""
    from flwr.proto.control_pb2 import ListRunsRequest, StreamLogsRequest

    after = 0.0
    for chunk in client.StreamLogs(StreamLogsRequest(run_id=run_id, after_timestamp=after)):
        for line in chunk.log_output.splitlines():
            if line.strip():
                echo(line)
    run = client.ListRuns(ListRunsRequest(run_id=run_id)).run_dict[run_id]
    return Outcome(run_id, run.status.status, run.status.sub_status, run.status.details)


def stop(client: Any, run_id: int) -> None:
    """Ask the SuperLink to stop the run (on Ctrl-C or SIGTERM)."""
    from flwr.proto.control_pb2 import StopRunRequest

    client.StopRun(StopRunRequest(run_id=run_id))
