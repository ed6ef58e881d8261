"""Run settings: the run config of `[tool.flwr.app.config]`, parsed and checked once.

The run config is Flower's flat table of dash-separated keys. Here it becomes groups:
what the nodes train (`training`), how rounds aggregate (`strategy`), what governance
records (`governance`), what a rehearsal makes go wrong (`rehearsal`, read only by
the simulation harness), what monitoring summarises and judges (`monitoring`),
differential privacy with its per-node budgets (`privacy`), and whether rounds run secure
aggregation (`secagg`). The defaults live in one place, the app's `pyproject.toml`; the
CLI shows and uses the same ones. The CLI checks the settings before it starts Ray, so bad
input fails in a second with one clear line instead of inside a running simulation.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from fedgov.secagg import SecAggSettings
from fedgov.strategies import StrategySettings
from governance.errors import UsageError
from governance.names import MAX_PURPOSE, check_name

APP_DIR = Path(__file__).resolve().parent.parent  # the Flower app: the repository root
DEVICES = ("cpu", "cuda")
MAX_NODES = 100_000
MAX_ROUNDS = 100_000
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds

# Rehearsal faults, by name (their effects live in simulations/rehearsal.py). These are applied after
# the node signed: a hostile node sends whatever it likes after signing.
SIGNATURE_FAULTS = ("unsigned", "forged", "deep-fingerprint", "bad-npy", "foreign-stype", "huge-metric")
# Summary faults are applied before signing: a node that signs a hostile summary (docs/monitoring.md).
SUMMARY_FAULTS = ("summary-negative", "summary-exposed", "summary-unknown-feature")
FAULTS = ("nan", "shape", "dtype", "extra-array", "missing-array", "missing-num-examples", "extra-metric",
          "extra-record", "inflated-examples", "bad-accuracy", *SUMMARY_FAULTS, *SIGNATURE_FAULTS)
NOISE_KINDS = ("none", "laplace", "gaussian")
MAX_MONITOR_BINS = 100


def default_run_config() -> dict[str, Any]:
    """`[tool.flwr.app.config]` of the app's pyproject.toml: every default, in one place (a copy)."""
    return dict(_app_config())


@lru_cache(maxsize=1)
def _app_config() -> dict[str, Any]:
    path = APP_DIR / "pyproject.toml"
    try:
        with open(path, "rb") as f:
            return dict(tomllib.load(f)["tool"]["flwr"]["app"]["config"])
    except (OSError, KeyError, tomllib.TOMLDecodeError) as err:
        raise UsageError(f"cannot read the run config's defaults from {path} ({type(err).__name__}); run fedgov "
                         "from its repository, which is the Flower app") from None


@lru_cache(maxsize=4)
def _settings_of(items: tuple[tuple[str, Any], ...]) -> "RunSettings":
    return RunSettings.from_run_config(dict(items))


# -- the rehearsal strings, parsed here and nowhere else ---------------------------------

def parse_faults(spec: str) -> dict[int, str]:
    """`"3:nan,5:shape"` -> {3: "nan", 5: "shape"}; bad specs fail in one line."""
    faults: dict[int, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        pid, _, kind = item.partition(":")
        if not (pid.isascii() and pid.isdigit()) or kind not in FAULTS:
            raise UsageError(f"bad fault {item!r}: use PARTITION:KIND with KIND one of {', '.join(FAULTS)}")
        faults[int(pid)] = kind
    return faults


def parse_node_rounds(spec: str, what: str) -> dict[str, int]:
    """`"sim-0002@2,sim-0005@3"` -> {node: round}; bad specs fail in one line."""
    parsed: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        node, _, rnd = item.partition("@")
        if not node or not (rnd.isascii() and rnd.isdigit()) or not 1 <= int(rnd) <= MAX_ROUNDS:
            raise UsageError(f"bad {what} {item!r}: use NODE@ROUND, e.g. sim-0002@2")
        parsed[check_name(node, f"node in {what}")] = int(rnd)
    return parsed


def parse_nodes(spec: str) -> list[str]:
    """`"sim-0003,sim-0007"` -> the node names, each checked."""
    return [check_name(n.strip(), "node") for n in spec.split(",") if n.strip()]


def parse_retrain_trigger(spec: str) -> int | None:
    """`"42"` -> 42, the monitor.trigger seq a retraining run answers; "" or anything else -> None."""
    spec = spec.strip()
    return int(spec) if spec.isascii() and spec.isdigit() and 0 < int(spec) <= 2**53 - 1 else None


# -- the groups ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Training:
    """What each node trains, on what, and for how long."""

    num_server_rounds: int
    dataset: str
    partition: str
    alpha: float
    num_partitions: int
    seed: int
    local_epochs: int
    batch_size: int
    lr: float
    device: str

    def check(self) -> None:
        from fedgov.catalog import check_dataset, check_partition  # no numpy: the launcher checks before its engine starts

        check_dataset(self.dataset)
        check_partition(self.partition, self.alpha)
        if not 1 <= self.num_server_rounds <= MAX_ROUNDS:
            raise UsageError(f"--rounds must be between 1 and {MAX_ROUNDS}, got {self.num_server_rounds}")
        if not 1 <= self.num_partitions <= MAX_NODES:
            raise UsageError(f"--nodes must be between 1 and {MAX_NODES}, got {self.num_partitions}")
        if not 0 <= self.seed <= MAX_SEED:
            raise UsageError(f"--seed must be a whole number from 0 to {MAX_SEED} (what numpy and torch take), "
                             f"got {self.seed}")
        if self.device not in DEVICES:
            raise UsageError(f"unknown device {self.device!r}: choose cpu or cuda")
        if self.local_epochs < 1 or self.batch_size < 1 or not 0 < self.lr < math.inf:
            raise UsageError("local-epochs and batch-size must be >= 1 and lr a finite number > 0")


@dataclass(frozen=True)
class GovernanceSettings:
    """What the run declares and where its record goes."""

    purpose: str
    operator: str
    workspace: str
    out_dir: str
    registration_timeout: float
    allow_failed_rounds: bool  # a deployed run with a failed round ends failed unless this is set
    retrain_trigger: str  # "" or the seq of the monitor.trigger entry this retraining run answers

    def check(self) -> None:
        if self.retrain_trigger and not parse_retrain_trigger(self.retrain_trigger):
            raise UsageError(f"--retrain-trigger must be the seq of a monitor.trigger entry (a whole number >= 1), "
                             f"got {self.retrain_trigger!r}")
        if not 0 < self.registration_timeout < math.inf:
            raise UsageError("registration-timeout and round-timeout must be finite numbers of seconds > 0")
        if not self.purpose.strip():
            raise UsageError("every run declares a purpose: pass --purpose")
        check_name(self.purpose, "--purpose", MAX_PURPOSE)
        check_name(self.operator, "--operator")


@dataclass(frozen=True)
class Rehearsal:
    """What a simulation makes go wrong on purpose, and the harness's own plumbing. The deployed
    apps check these keys like any other but never act on them: only the simulation harness
    imports the code that does (`simulations/rehearsal.py`)."""

    faults: str  # as given, which is what the run records
    drift: str
    revoke: str
    trace_dir: str
    sim_root: str  # the simulated nodes' own directories
    enrollment_gate: str  # a file the launcher writes once the simulated nodes are enrolled
    hard: str  # nodes whose data is made hard for the model (labels rotated)
    # the strings above, parsed once, here
    fault_plan: dict[int, str] = field(init=False, compare=False, repr=False)
    drift_plan: dict[str, int] = field(init=False, compare=False, repr=False)
    revocations: dict[str, int] = field(init=False, compare=False, repr=False)
    hard_nodes: frozenset[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fault_plan", parse_faults(self.faults))
        object.__setattr__(self, "drift_plan", parse_node_rounds(self.drift, "--drift"))
        object.__setattr__(self, "revocations", parse_node_rounds(self.revoke, "--revoke"))
        object.__setattr__(self, "hard_nodes", frozenset(parse_nodes(self.hard)))

    def check(self) -> None:
        """Parsing already checked every rehearsal string."""


@dataclass(frozen=True)
class Monitoring:
    """What nodes summarise of their data and how the coordinator judges drift, degradation and
    fairness (docs/monitoring.md). A node's own policy may share less, never more."""

    monitor: bool
    monitor_bins: int
    monitor_min_count: int
    monitor_noise: str
    monitor_noise_scale: float
    drift_psi_moderate: float
    drift_psi_significant: float
    drift_js: float
    drift_min_count: int
    fairness_floor: float

    def check(self) -> None:
        if not 2 <= self.monitor_bins <= MAX_MONITOR_BINS:
            raise UsageError(f"monitor-bins must be between 2 and {MAX_MONITOR_BINS}, got {self.monitor_bins}")
        if not 1 <= self.monitor_min_count <= MAX_NODES * 1000:
            raise UsageError(f"monitor-min-count must be a whole number >= 1, got {self.monitor_min_count}")
        if self.monitor_noise not in NOISE_KINDS:
            raise UsageError(f"monitor-noise must be one of {', '.join(NOISE_KINDS)}, got {self.monitor_noise!r}")
        if not 0 < self.monitor_noise_scale <= 1e6:
            raise UsageError(f"monitor-noise-scale must be a number in (0, 1e6], got {self.monitor_noise_scale}")
        if not 0 < self.drift_psi_moderate <= self.drift_psi_significant < math.inf:
            raise UsageError("drift-psi-moderate and drift-psi-significant must be finite, > 0, moderate <= significant")
        if not 0 < self.drift_js <= 1:
            raise UsageError(f"drift-js must be in (0, 1] (a Jensen-Shannon distance, base 2), got {self.drift_js}")
        if self.drift_min_count < 1:
            raise UsageError(f"drift-min-count must be a whole number >= 1, got {self.drift_min_count}")
        if not 0 <= self.fairness_floor <= 1:
            raise UsageError(f"fairness-floor must be an accuracy in [0, 1], got {self.fairness_floor}")


DP_MODES = ("none", "server-fixed", "client-fixed")
DP_STRATEGIES = ("fedavg", "fedprox")  # an equal-weight mean: what the wrappers' noise is calibrated to


def parse_budgets(spec: str) -> dict[str, float]:
    """`"sim-0002:1.5,sim-0005:3"` -> {node: epsilon cap}; bad specs fail in one line."""
    caps: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        node, _, cap = item.rpartition(":")
        try:
            value = float(cap)
        except ValueError:
            value = math.nan
        if not node or not 0 < value < math.inf:
            raise UsageError(f"bad privacy budget {item!r}: use NODE:EPSILON with EPSILON a number > 0, "
                             "e.g. sim-0002:1.5")
        name = check_name(node, "node in --privacy-budgets")
        if name in caps:  # the larger or the later would both be a guess
            raise UsageError(f"bad privacy budget {item!r}: {name} already has a cap ({caps[name]:g}); give each node once")
        caps[name] = value
    return caps


@dataclass(frozen=True)
class Privacy:
    """Differential privacy (Flower's fixed-clipping wrappers) and each node's epsilon cap (docs/privacy.md)."""

    dp: str
    dp_noise_multiplier: float
    dp_clipping_norm: float
    dp_delta: float
    privacy_max_epsilon: float  # 0: no cap unless privacy-budgets names one
    privacy_budgets: str  # as given, which is what the run records
    caps: dict[str, float] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "caps", parse_budgets(self.privacy_budgets))

    @property
    def enabled(self) -> bool:
        return self.dp != "none"

    def cap_for(self, node: str) -> float | None:
        """The node's epsilon cap in this run: its own, else privacy-max-epsilon, else none."""
        return self.caps.get(node) or (self.privacy_max_epsilon or None)

    def check(self) -> None:
        if self.dp not in DP_MODES:
            raise UsageError(f"unknown dp mode {self.dp!r}: choose one of {', '.join(DP_MODES)}")
        if not 0 < self.dp_noise_multiplier < math.inf or not 0 < self.dp_clipping_norm < math.inf:
            raise UsageError("dp-noise-multiplier and dp-clipping-norm must be finite numbers > 0")
        if not 0 < self.dp_delta < 1:
            raise UsageError(f"dp-delta must be in (0, 1), got {self.dp_delta}")
        if not 0 <= self.privacy_max_epsilon < math.inf:
            raise UsageError(f"privacy-max-epsilon must be a finite number >= 0, got {self.privacy_max_epsilon}")
        if not self.enabled and (self.caps or self.privacy_max_epsilon):
            raise UsageError("privacy budgets are spent only under differential privacy: pass --dp server-fixed "
                             "or --dp client-fixed with --privacy-budgets / --privacy-max-epsilon")


GROUPS = {"training": Training, "strategy": StrategySettings, "governance": GovernanceSettings,
          "rehearsal": Rehearsal, "monitoring": Monitoring, "privacy": Privacy, "secagg": SecAggSettings}


def _run_key(f: Any) -> str:
    return f.metadata.get("key", f.name.replace("_", "-"))


def _config_fields(kind: type) -> list[Any]:
    """A group's fields that are run-config keys (not what it derives from them)."""
    return [f for f in fields(kind) if f.init]


def _convert(key: str, value: Any, f: Any) -> Any:
    """A run-config value as the field holds it: parsed, or of the default's type."""
    kind = type(_app_config()[key])
    if kind is bool and not isinstance(value, bool):
        raise UsageError(f"run config {key} must be true or false, got {value!r}")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise UsageError(f"run config {key} must be a whole number, got {value}")
    try:
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"run config {key} must be a {kind.__name__}, got {value!r}") from None


@dataclass(frozen=True)
class RunSettings:
    """Every key of the app's run config, typed and grouped."""

    training: Training
    strategy: StrategySettings
    governance: GovernanceSettings
    rehearsal: Rehearsal
    monitoring: Monitoring
    privacy: Privacy
    secagg: SecAggSettings

    @classmethod
    def from_run_config(cls, config: Mapping[str, Any] | None = None) -> "RunSettings":
        """Build from a Flower run config (dash-separated keys) over the defaults, then check."""
        given = {**default_run_config(), **(config or {})}
        groups = {}
        for group, kind in GROUPS.items():
            groups[group] = kind(**{f.name: _convert(_run_key(f), given[_run_key(f)], f) for f in _config_fields(kind)})
        settings = cls(**groups)
        settings.check()
        return settings

    @classmethod
    def of_run(cls, config: Mapping[str, Any]) -> "RunSettings":
        """`from_run_config`, parsed and checked once per process for the same run config.

        A ClientApp is called once per node and round with its run's config; parsing it each time
        was a fifth of a simulated node's governance work. The settings are read-only, so one copy
        serves every call; an invalid config still raises on every call (nothing is cached for it).
        """
        try:
            key = tuple(sorted(config.items()))
            hash(key)
        except TypeError:  # a value that cannot be a key (a list, say): parse it as given, and let the check say why
            return cls.from_run_config(config)
        return _settings_of(key)

    def override(self, config: Mapping[str, Any]) -> "RunSettings":
        """These settings with some run-config keys changed, parsed and checked again."""
        return RunSettings.from_run_config({**self.to_run_config(), **config})

    def to_run_config(self) -> dict[str, Any]:
        """The flat, dash-separated run config Flower passes to the ServerApp and ClientApps."""
        config = {}
        for group in GROUPS:
            values = getattr(self, group)
            for f in _config_fields(type(values)):
                config[_run_key(f)] = getattr(values, f.name)
        return {key: config[key] for key in _app_config()}  # pyproject's order

    def min_nodes(self) -> int:
        """The fewest nodes a round of this strategy can aggregate."""
        return self.strategy.min_nodes()

    def aggregation_minimum(self) -> int:
        """Valid replies a round needs (see `StrategySettings.aggregation_minimum`)."""
        return self.strategy.aggregation_minimum()

    def check(self) -> None:
        """Raise UsageError naming the first bad setting and how to fix it."""
        self.training.check()
        self.strategy.check()
        if self.training.num_partitions < self.min_nodes():
            raise UsageError(
                f"--nodes {self.training.num_partitions} is below the minimum of {self.min_nodes()} "
                f"nodes for strategy {self.strategy.name}"
            )
        self.governance.check()
        self.rehearsal.check()
        self.monitoring.check()
        self.privacy.check()
        if self.privacy.enabled and self.strategy.name not in DP_STRATEGIES:
            raise UsageError(f"--dp {self.privacy.dp} needs an averaging strategy ({', '.join(DP_STRATEGIES)}): "
                             f"Flower's DP noise is calibrated to a mean, not to {self.strategy.name}")
        self.secagg.check()
        self.secagg.check_run(self.strategy.name, self.nodes_per_round(), self.privacy.dp,
                              self.rehearsal.fault_plan.values())

    def nodes_per_round(self) -> int:
        """How many nodes a round trains when every node consents (governance/verify/selection.py's k)."""
        from governance.verify.selection import sample_size

        return sample_size(self.training.num_partitions, self.strategy.fraction_train, self.min_nodes())
