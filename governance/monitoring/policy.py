"""The retraining policy: a TOML file that says which evidence calls for retraining, and how to retrain.

    cooldown = "6h"                # no second retraining decision within this long of the last one
    [triggers]
    accuracy_drop = 0.05           # global accuracy more than 0.05 below its best
    drift_share = 0.3              # significant drift on at least 30 % of the nodes with a verdict
    worst_node_below = 0.6         # the worst node's accuracy under 0.6
    [retrain]
    kind = "simulation"            # or "deployed": `fedgov run` on the running coordinator
    rounds = 3
    nodes = 10
    dataset = "breast-cancer"
    purpose = "retraining"

Every key is checked here, once: an unknown key, a wrong type or a value out of range is one
`UsageError` naming the key and how to fix it (exit 2), never a policy half applied.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from governance.errors import UsageError
from governance.verify.canonical import canonical_bytes

TRIGGERS = {  # TOML key -> (name in the record, what the threshold is)
    "accuracy_drop": ("accuracy-drop", "a drop of global accuracy from its best, in (0, 1]"),
    "drift_share": ("drift-share", "a fraction of the nodes with a drift verdict, in (0, 1] (0.3 = 30 %)"),
    "worst_node_below": ("worst-node", "an accuracy floor for the worst node, in (0, 1]"),
}
KINDS = ("simulation", "deployed")
MAX_COOLDOWN_S = 366 * 86400
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# [retrain] keys: name -> (type, what the child command gets, help). Both kinds take the same
# run settings; `fedgov sim run` and `fedgov run` check them again, with their own messages.
RETRAIN_KEYS: dict[str, tuple[type, str]] = {
    "kind": (str, "simulation or deployed"),
    "purpose": (str, "the purpose the retraining run declares (nodes need consent for it)"),
    "rounds": (int, "federated rounds, >= 1"),
    "nodes": (int, "nodes, >= 1"),
    "dataset": (str, "breast-cancer or digits"),
    "strategy": (str, "a Flower strategy fedgov knows, e.g. fedavg"),
    "partition": (str, "iid or dirichlet (simulation only)"),
    "seed": (int, "a whole number >= 0 (simulation only)"),
    "local_epochs": (int, "local epochs per round, >= 1 (simulation only)"),
    "out": (str, "the retraining run's directory; {seq} becomes the trigger's seq"),
}
SIMULATION_ONLY = ("partition", "seed", "local_epochs")
POSITIVE_INTS = ("rounds", "nodes", "local_epochs")
DEFAULT_OUT = "fedgov-runs/retrain-{seq}"


@dataclass(frozen=True)
class Retrain:
    """How a retraining run is launched: a child `fedgov sim run` (simulation) or `fedgov run` (deployed)."""

    kind: str = "simulation"
    purpose: str = "retraining"
    options: dict[str, Any] = field(default_factory=dict)  # rounds, nodes, dataset, ...: as the policy gave them
    out: str = DEFAULT_OUT


@dataclass(frozen=True)
class Policy:
    """A parsed retraining policy: thresholds by trigger name, the cooldown, and how to retrain."""

    thresholds: dict[str, float]  # record name ("drift-share") -> threshold
    cooldown_s: float
    retrain: Retrain
    source: str = ""  # the file it came from, for messages

    def to_record(self) -> dict[str, Any]:
        """The policy as the ledger records it (canonical JSON: no path, no floats that cannot round-trip)."""
        return {"triggers": dict(sorted(self.thresholds.items())), "cooldown_s": self.cooldown_s,
                "retrain": {k: v for k, v in asdict(self.retrain).items()}}

    @property
    def policy_hash(self) -> str:
        return hashlib.sha256(canonical_bytes(self.to_record())).hexdigest()


def load_policy(path: Path) -> Policy:
    """Read and check a policy file; any problem is one UsageError naming the key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot read --policy {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--policy {path} is not UTF-8 text; a policy is a TOML file") from None
    return parse_policy(text, str(path))


def parse_policy(text: str, source: str = "policy") -> Policy:
    """Parse policy TOML text (see the module docstring for the format)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{source}: not valid TOML ({err}); see docs/monitoring.md, \"Retraining triggers\"") from None
    except RecursionError:  # the parser recurses once per nested array or inline table
        raise UsageError(f"{source}: not valid TOML (nested too deeply); see docs/monitoring.md") from None
    _no_unknown(data, ("cooldown", "triggers", "retrain"), "", source)
    triggers = _table(data, "triggers", source)
    _no_unknown(triggers, TRIGGERS, "triggers.", source)
    thresholds = {TRIGGERS[key][0]: _fraction(triggers[key], f"triggers.{key}", TRIGGERS[key][1], source)
                  for key in TRIGGERS if key in triggers}
    if not thresholds:
        raise UsageError(f"{source}: [triggers] names no trigger; set at least one of "
                         f"{', '.join(TRIGGERS)} (see docs/examples/monitor-policy.toml)")
    cooldown = parse_duration(data.get("cooldown", "1h"), "cooldown", source)
    return Policy(thresholds, cooldown, _retrain(_table(data, "retrain", source), source), source)


def _table(data: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise UsageError(f"{source}: {key} must be a table ([{key}]), got {_kind(value)}")
    return value


def _no_unknown(table: dict[str, Any], known: Any, prefix: str, source: str) -> None:
    for key in table:
        if key not in known:
            raise UsageError(f"{source}: unknown key {prefix}{key}; known keys here: "
                             f"{', '.join(prefix + k for k in known)}")


def _kind(value: Any) -> str:
    return {bool: "true/false", str: "a string", int: "a whole number", float: "a number", dict: "a table",
            list: "an array"}.get(type(value), type(value).__name__) + f" ({value!r})"[:60]


def _fraction(value: Any, key: str, what: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{source}: {key} must be a number, {what}; got {_kind(value)}")
    if not (math.isfinite(value) and 0 < value <= 1):
        raise UsageError(f"{source}: {key} = {value} is out of range: give {what}")
    return float(value)


def parse_duration(value: Any, key: str = "cooldown", source: str = "policy") -> float:
    """`"90s"`, `"30m"`, `"6h"`, `"1d"` or a number of seconds -> seconds (0 = no cooldown)."""
    fix = 'give a duration such as "30m", "6h" or "1d", or seconds as a number (0: none)'
    if isinstance(value, bool):
        raise UsageError(f"{source}: {key} must be a duration; {fix}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip())):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise UsageError(f"{source}: {key} = {value!r} is not a duration; {fix}")
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_COOLDOWN_S):
        raise UsageError(f"{source}: {key} = {value!r} is out of range; {fix}, at most 366d")
    return seconds


def _retrain(table: dict[str, Any], source: str) -> Retrain:
    _no_unknown(table, RETRAIN_KEYS, "retrain.", source)
    for key, value in table.items():
        kind, what = RETRAIN_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise UsageError(f"{source}: retrain.{key} must be {what}; got {_kind(value)}")
        if kind is str and not value.strip():
            raise UsageError(f"{source}: retrain.{key} is empty; give {what}")
        if key in POSITIVE_INTS and not 1 <= value <= 100_000:
            raise UsageError(f"{source}: retrain.{key} = {value} is out of range; give {what}")
        if key == "seed" and not 0 <= value <= 2**32 - 1:
            raise UsageError(f"{source}: retrain.seed = {value} is out of range; give a whole number from 0 to "
                             f"{2**32 - 1}")
    kind = table.get("kind", "simulation")
    if kind not in KINDS:
        raise UsageError(f"{source}: retrain.kind = {kind!r} is unknown; give \"simulation\" or \"deployed\"")
    if kind == "deployed":
        for key in SIMULATION_ONLY:
            if key in table:
                raise UsageError(f"{source}: retrain.{key} applies to a simulation only; remove it for "
                                 "kind = \"deployed\"")
    options = {k: v for k, v in table.items() if k not in ("kind", "purpose", "out")}
    return Retrain(kind, table.get("purpose", "retraining"), options, table.get("out", DEFAULT_OUT))
