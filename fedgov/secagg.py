"""The SecAgg+ option: its run settings, what it can run with, and what a node signs under it.

With `secagg` on, a round runs Flower's SecAgg+ (`SecAggPlusWorkflow` on the server,
`secaggplus_mod` on the node; Flower 1.42 has it only in its legacy API). The server then
sees each node's update only masked, and the sum unmasked. What a node can still sign is
its masked vector: the node signs the usual statement (`reply_signing_payload`) with the
SHA-256 of its masked vector in the update digest's place (`masked_digest`), and a digest of
its plaintext fit metrics (`fit_metrics_digest`). Both sides compute these digests here.

Byte layout of `masked_digest`: SHA-256 over, for each masked array in the order sent, its
length as 8 bytes big-endian, then its bytes (Flower's `ndarray_to_bytes`, a .npy file).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from governance.errors import UsageError
from governance.reply_metrics import NUM_EXAMPLES

PROTOCOL = "SecAgg+ (flwr SecAggPlusWorkflow, legacy API)"
# Rehearsed faults that apply to a SecAgg+ reply (simulations/client_app.py): the node's statement over its masked
# vector, or a record smuggled beside it. The others corrupt a Message-API reply's arrays and metrics.
SECAGG_FAULTS = ("forged", "unsigned", "extra-record")
SECAGG_STRATEGIES = ("fedavg", "fedprox")  # SecAgg+ yields one weighted sum: only averaging can use it
MODULUS_RANGE = 2**32  # Flower's default; masks are drawn below it and the sum is taken modulo it
MAX_WEIGHT = 1000.0  # Flower's default max_weight: a node's weight is num-examples / MAX_WEIGHT, quantized


@dataclass(frozen=True)
class SecAggSettings:
    """Whether rounds run SecAgg+, and its parameters (Flower's `SecAggPlusWorkflow`)."""

    enabled: bool = field(metadata={"key": "secagg"})
    num_shares: int = field(metadata={"key": "secagg-num-shares"})
    reconstruction_threshold: int = field(metadata={"key": "secagg-reconstruction-threshold"})
    clipping_range: float = field(metadata={"key": "secagg-clipping-range"})
    quantization_range: int = field(metadata={"key": "secagg-quantization-range"})

    def check(self) -> None:
        """The parameters on their own; `check_run` checks them against the rest of the run."""
        if not self.enabled:
            return
        if self.num_shares < 3:
            raise UsageError(f"secagg-num-shares must be at least 3 (Flower's SecAgg+ needs more than 2), "
                             f"got {self.num_shares}")
        if not 2 <= self.reconstruction_threshold < self.num_shares:
            raise UsageError(f"secagg-reconstruction-threshold must be at least 2 and below secagg-num-shares "
                             f"({self.num_shares}), got {self.reconstruction_threshold}")
        if not 0 < self.clipping_range < math.inf:
            raise UsageError(f"secagg-clipping-range must be a finite number > 0, got {self.clipping_range}")
        if not 0 < self.quantization_range < MODULUS_RANGE:
            raise UsageError(f"secagg-quantization-range must be > 0 and below 2**32, got {self.quantization_range}")

    def check_run(self, strategy: str, nodes_per_round: int, dp: str, faults: Iterable[str]) -> None:
        """Raise UsageError when this run cannot use SecAgg+ as configured (checked before Ray starts)."""
        if not self.enabled:
            return
        if strategy not in SECAGG_STRATEGIES:
            raise UsageError(f"--secagg works only with weighted averaging ({', '.join(SECAGG_STRATEGIES)}): "
                             f"SecAgg+ reveals only the sum, which strategy {strategy} cannot aggregate")
        if dp and dp != "none":
            raise UsageError(f"--secagg cannot be combined with --dp {dp}: fedgov does not account DP noise "
                             "added under secure aggregation yet; choose one")
        unrehearsed = sorted(set(faults) - set(SECAGG_FAULTS))
        if unrehearsed:
            raise UsageError(f"--faults {', '.join(unrehearsed)} cannot be rehearsed under --secagg (they corrupt a "
                             f"Message-API reply's arrays or metrics); under --secagg: {', '.join(SECAGG_FAULTS)}")
        if nodes_per_round * self.quantization_range >= MODULUS_RANGE:
            raise UsageError(f"secagg-quantization-range {self.quantization_range} x {nodes_per_round} nodes per round "
                             "reaches 2**32: the masked sum would overflow; lower secagg-quantization-range")
        if nodes_per_round < self.num_shares:
            raise UsageError(f"secagg-num-shares {self.num_shares} needs at least that many nodes per round, "
                             f"but this run trains {nodes_per_round}; lower secagg-num-shares or add nodes")


def masked_digest(masked: Sequence[bytes]) -> str:
    """SHA-256 of a node's masked vector as sent (layout in the module docstring)."""
    h = hashlib.sha256()
    for chunk in masked:
        h.update(len(chunk).to_bytes(8, "big"))
        h.update(chunk)
    return h.hexdigest()


def fit_metrics_digest(metrics: Mapping[str, int | float | str], num_examples: int) -> str:
    """SHA-256 of the plaintext fit metrics with the example count (RFC 8785 JSON, governance.digests)."""
    from governance.digests import metrics_digest  # numpy: loaded when a reply is digested, not for `fedgov --help`

    return metrics_digest({**metrics, NUM_EXAMPLES: num_examples})
