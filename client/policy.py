"""A site's own policy: what its node will take part in, decided on its machine, not by the coordinator.

The policy lives in the node's own file (`policy.toml`, table `[policy]`):

```toml
[policy]
purposes = ["triage model"]   # the run's declared purpose must be one of these
app_hashes = ["3f2a…"]        # SHA-256 of the app bundles (FABs) this node accepts; [] accepts none
max_rounds = 50               # a run of more rounds is refused
max_update_bytes = 10000000   # a reply whose arrays would exceed this is not sent
min_dp_noise_multiplier = 0.0 # > 0: only runs that apply at least this DP noise (run config dp and dp-noise-multiplier)
```

Every key is required: a policy that forgets a rule must not silently allow it. `check_run` and
`check_update` return the reason a node refuses, or None; the node replies with that reason and
the coordinator records it.

What the node shares for monitoring (docs/monitoring.md) is its own table; without it the node
shares no summary at all:

```toml
[monitoring]
share = true        # send histograms and the label distribution of the rows it trained on
min_count = 10      # counts below this are suppressed; never lower than the run's monitor-min-count
noise = "laplace"   # "none", "laplace" or "gaussian", added to every count before suppression
noise_scale = 2.0   # Laplace b or Gaussian sigma, in counts
```
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from fedgov.settings import NOISE_KINDS
from fedgov.summaries import SummaryRule
from governance.errors import UsageError
from governance.hashes import SHA256_HEX

KEYS = ("purposes", "app_hashes", "max_rounds", "max_update_bytes", "min_dp_noise_multiplier")
MONITORING_KEYS = ("share", "min_count", "noise", "noise_scale")
NO_SHARING = SummaryRule(share=False, min_count=1)


def monitoring_rule(table: object, source: str) -> SummaryRule:
    """Parse `[monitoring]`; absent, the node shares no summary. One clear line for anything malformed."""
    if table is None:
        return NO_SHARING
    if not isinstance(table, dict):
        raise UsageError(f"{source}: [monitoring] must be a table")
    missing = [k for k in MONITORING_KEYS if k not in table]
    unknown = sorted(set(table) - set(MONITORING_KEYS))
    if missing:
        raise UsageError(f"{source}: [monitoring] lacks {', '.join(missing)}; every rule must be stated")
    if unknown:
        raise UsageError(f"{source}: [monitoring] has unknown key {unknown[0]!r}; the keys are "
                         f"{', '.join(MONITORING_KEYS)}")
    share, min_count, noise, scale = (table[k] for k in MONITORING_KEYS)
    if not isinstance(share, bool):
        raise UsageError(f"{source}: monitoring share must be true or false, got {share!r}")
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise UsageError(f"{source}: monitoring min_count must be a whole number >= 1, got {min_count!r}")
    if noise not in NOISE_KINDS:
        raise UsageError(f"{source}: monitoring noise must be one of {', '.join(NOISE_KINDS)}, got {noise!r}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 <= scale <= 1e6:
        raise UsageError(f"{source}: monitoring noise_scale must be a number in [0, 1e6], got {scale!r}")
    if noise != "none" and scale <= 0:
        raise UsageError(f"{source}: monitoring noise {noise!r} needs a noise_scale > 0")
    return SummaryRule(share, min_count, noise, float(scale))


def read_site_file(path: Path) -> dict[str, Any]:
    """The node's site file as TOML, with its [policy] table; one clear line when it cannot be read."""
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except OSError as err:
        raise UsageError(f"cannot read the site file {path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"the site file {path} is not valid TOML: {err}") from None
    except UnicodeDecodeError:
        raise UsageError(f"the site file {path} is not UTF-8 text; a site file is TOML") from None
    except RecursionError:  # the parser recurses once per nested array or inline table
        raise UsageError(f"the site file {path} is not valid TOML: nested too deeply") from None
    if not isinstance(document.get("policy"), dict):
        raise UsageError(f"{path}: no [policy] table")
    return document


@dataclass(frozen=True)
class SitePolicy:
    """What one site allows."""

    purposes: tuple[str, ...]
    app_hashes: tuple[str, ...]
    max_rounds: int
    max_update_bytes: int
    min_dp_noise_multiplier: float

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], source: str) -> "SitePolicy":
        """Parse `[policy]`; one clear line naming the key for anything missing, unknown or mistyped."""
        missing = [k for k in KEYS if k not in table]
        unknown = sorted(set(table) - set(KEYS))
        if missing:
            raise UsageError(f"{source}: [policy] lacks {', '.join(missing)}; every rule must be stated")
        if unknown:
            raise UsageError(f"{source}: [policy] has unknown key {unknown[0]!r}; the keys are {', '.join(KEYS)}")
        purposes, hashes = table["purposes"], table["app_hashes"]
        if not isinstance(purposes, list) or not all(isinstance(p, str) and p.strip() for p in purposes):
            raise UsageError(f"{source}: policy purposes must be a list of non-empty strings")
        if not isinstance(hashes, list) or not all(isinstance(h, str) and SHA256_HEX.fullmatch(h) for h in hashes):
            raise UsageError(f"{source}: policy app_hashes must be a list of SHA-256 hashes (64 lower-case hex)")
        for key in ("max_rounds", "max_update_bytes"):
            value = table[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"{source}: policy {key} must be a whole number >= 1, got {value!r}")
        noise = table["min_dp_noise_multiplier"]
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < math.inf:
            raise UsageError(f"{source}: policy min_dp_noise_multiplier must be a finite number >= 0, got {noise!r}")
        return cls(tuple(purposes), tuple(hashes), table["max_rounds"], table["max_update_bytes"], float(noise))

    @classmethod
    def load(cls, path: Path) -> "SitePolicy":
        """Read the policy from the node's own site file."""
        return cls.from_mapping(read_site_file(path)["policy"], str(path))

    def check_run(self, *, purpose: str, app_hash: str, rounds: int, dp_noise_multiplier: float = 0.0) -> str | None:
        """Why this node refuses a run, or None when the policy allows it. Checked before any data is read."""
        if purpose not in self.purposes:
            return f"site policy: purpose {purpose[:120]!r} is not one this site allows"
        if app_hash not in self.app_hashes:
            return f"site policy: app bundle {app_hash[:64]!r} is not one this site approved"
        if rounds < 1:
            return f"site policy: a run of {rounds} rounds is no run"
        if rounds > self.max_rounds:
            return f"site policy: {rounds} rounds is more than this site's maximum of {self.max_rounds}"
        if not dp_noise_multiplier >= self.min_dp_noise_multiplier:  # NaN never satisfies a minimum
            return (f"site policy: DP noise multiplier {dp_noise_multiplier:g} is below this site's minimum of "
                    f"{self.min_dp_noise_multiplier:g}")
        return None

    def check_update(self, update_bytes: int) -> str | None:
        """Why this node will not send an update of this size, or None."""
        if update_bytes > self.max_update_bytes:
            return f"site policy: the update is {update_bytes} bytes, more than this site's maximum of " \
                   f"{self.max_update_bytes}"
        return None
