"""A node's epsilon from the Gaussian releases its update entered: Google's dp-accounting RDP accountant.

One accountant per node, not one per run: a node's budget is the node's own (its data), so
each node composes only the releases its update was part of. Each release is a Gaussian
mechanism of noise multiplier sigma on a mean whose per-node sensitivity is the clipping
norm over the number averaged (Flower's calibration): under zero-out-one-node
neighbouring it is `GaussianDpEvent(sigma)`, composed once per release, with *no* sampling
amplification (fedgov's selection is a deterministic, recorded draw, not a secret Poisson
sample: docs/privacy.md). RDP at order a of one release is a / (2 sigma^2); the conversion
to (epsilon, delta) is dp-accounting's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from governance.errors import UsageError

# dp-accounting's own default orders (RdpAccountant), written down so a verifier uses the same ones.
ORDERS: tuple[float, ...] = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [128, 256, 512, 1024])
NEIGHBORING = "zero-out one node's update (its clipped update replaced by zeros; the mean's divisor is the recorded participant count)"


def accountant_name(orders: Sequence[float] = ORDERS) -> str:
    """What `round.privacy` records as its accountant: the library, its version and the orders' span."""
    try:
        release = version("dp-accounting")
    except PackageNotFoundError:
        release = "unknown"
    return f"rdp (dp-accounting {release}, {len(orders)} orders {min(orders):g}..{max(orders):g})"


def epsilon(noise_multipliers: Sequence[float], delta: float, orders: Sequence[float] = ORDERS) -> float:
    """Epsilon at `delta` after one Gaussian release per entry of `noise_multipliers` (0.0 for none).

    Raises UsageError for a multiplier that is not a finite number > 0 or a delta outside (0, 1):
    a recorded event that cannot be accounted must not read as "nothing spent".
    """
    if not 0 < delta < 1:
        raise UsageError(f"delta must be in (0, 1), got {delta!r}")
    for sigma in noise_multipliers:
        if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not 0 < sigma < math.inf:
            raise UsageError(f"a noise multiplier must be a finite number > 0, got {sigma!r}")
    if not noise_multipliers:
        return 0.0
    import dp_accounting  # loads only when a budget is computed: `fedgov --help` stays fast

    accountant = dp_accounting.rdp.RdpAccountant(
        orders=list(orders), neighboring_relation=dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE)
    for sigma in noise_multipliers:
        accountant.compose(dp_accounting.GaussianDpEvent(float(sigma)))
    return float(accountant.get_epsilon(delta))
