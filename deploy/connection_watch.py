"""A node's connection state, read from its SuperNode's own output (Flower 1.42 has no local status API).

The SuperNode logs `SuperNode ID: N` once the coordinator activated it, and `Connection
attempt failed, retrying in S seconds` before each retry of a failed call (heartbeat, pull,
push). So: connected after the first; disconnected at the first retry; connected again when
the retry it announced found no failure to report (no further such line within S seconds and
a margin). `Exit Code: 305` is Flower's refusal to activate the node, which `node join`
retries: the coordinator may still count the node's previous session. Unless the coordinator's
Fleet proxy added that the node's key is not registered at all (`NOT_REGISTERED`): then retrying
is pointless.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deploy.fleet_proxy import NOT_REGISTERED

ACTIVATED = re.compile(r"SuperNode ID: (\d+)")
RETRYING = re.compile(r"Connection attempt failed, retrying in ([0-9.]+) seconds")
REFUSED = re.compile(r"Exit Code: 305\b")
GAVE_UP = re.compile(r"Giving up reconnection")
MARGIN = 10.0  # seconds after an announced retry within which its failure would have been logged


@dataclass
class ConnectionWatch:
    """Feed it the SuperNode's lines and the clock; it answers with a line for each change of state."""

    node_id: str
    superlink: str
    state: str = "connecting"  # connecting, connected, retrying
    flower_id: str = ""
    refused: bool = False
    unregistered: bool = False
    retry_until: float = 0.0
    waiting_said: bool = False

    def feed(self, line: str, now: float) -> str | None:
        if REFUSED.search(line):
            self.refused = True
            return None
        if NOT_REGISTERED in line:
            self.unregistered = True
            return None
        if GAVE_UP.search(line):
            self.state = "gave up"
            return f"node {self.node_id}: the SuperNode gave up reconnecting to {self.superlink}"
        activated = ACTIVATED.search(line)
        if activated:
            self.flower_id = activated.group(1)
            self.state = "connected"
            return f"node {self.node_id}: connected to {self.superlink} (Flower node id {self.flower_id})"
        retrying = RETRYING.search(line)
        if retrying:
            self.retry_until = now + float(retrying.group(1)) + MARGIN
            if self.state == "connected":
                self.state = "retrying"
                return (f"node {self.node_id}: lost the connection to {self.superlink}; the SuperNode retries by "
                        "itself")
            if self.state == "connecting" and not self.waiting_said:
                self.waiting_said = True
                return f"node {self.node_id}: cannot reach {self.superlink} yet; the SuperNode retries by itself"
        return None

    def tick(self, now: float) -> str | None:
        """Called between lines: a retry that was announced and brought no new failure succeeded."""
        if self.state == "retrying" and now > self.retry_until:
            self.state = "connected"
            return f"node {self.node_id}: connected to {self.superlink} again"
        return None
