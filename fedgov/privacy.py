"""Differential privacy through Flower's own fixed-clipping wrappers, chosen by the run config.

The coordinator wraps the configured averaging strategy in
`DifferentialPrivacyServerSideFixedClipping` (it clips each update, then adds Gaussian noise of
stdev sigma * C / k to the mean) or `DifferentialPrivacyClientSideFixedClipping` (each node
clips with Flower's `fixedclipping_mod`; the server adds the same noise); fedgov's
`GovernedStrategy` wraps the result, so it still selects the nodes and checks every reply
before the DP wrapper sees it.

Two things fedgov settles that the wrappers leave open:
- k, the wrappers' `num_sampled_clients`, is set to the number of updates actually averaged
  each round (`ReplyCalibrated`), so the noise fits the mean it is added to, whatever the
  governed selection drew and whichever replies were rejected: every release has noise
  multiplier sigma for each of its participants, which is what the ledger records.
- the mean is unweighted: under DP, each node reports `dp-weight` = 1 (signed with its
  metrics) and FedAvg averages by it, because the noise is calibrated to an equal-weight
  mean; a node weighted by its row count would otherwise carry more than C / k.

On the node, clipping runs *before* signing: `clip_before_signing` runs Flower's
`fixedclipping_mod` around the unsigned training step, so the signature covers exactly the
clipped update the node sends (as a ClientApp mod it would run after the handler had signed,
and every clipped reply would fail its signature check).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedgov.protocol import ARRAYS_KEY, METRICS_KEY, NamedArrays
from fedgov.settings import Privacy
from governance.errors import PolicyError

DP_WEIGHT_KEY = "dp-weight"  # the averaging weight of a node's update under DP: always 1 (an unweighted mean)
NORM_TOLERANCE = 1e-5  # relative: float32 rounding of an update clipped to exactly C


class ReplyCalibrated(Strategy):
    """Delegate to a Flower DP wrapper, setting its `num_sampled_clients` to what each round really averages.

    At configure time that is the number of instructions (the governed selection's size), at
    aggregation the number of valid replies the governed wrapper passed on.
    """

    def __init__(self, dp_strategy: Strategy) -> None:
        self.dp = dp_strategy
        self.current_arrays: ArrayRecord | None = None

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self.current_arrays = arrays
        self.dp.num_sampled_clients = max(len(list(grid.get_node_ids())), 1)
        return self.dp.configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        self.dp.num_sampled_clients = max(len(replies), 1)
        return self.dp.aggregate_train(server_round, replies)

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        return self.dp.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return self.dp.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        self.dp.summary()

    # -- reply checks (GovernedStrategy's reply_checks) ------------------------------------

    def check_weight(self, server_round: int, reply: Message, arrays: NamedArrays) -> str | None:
        """Under DP the mean is unweighted: a node claiming another weight is rejected, by name."""
        weight = reply.content[METRICS_KEY].get(DP_WEIGHT_KEY)
        if isinstance(weight, bool) or weight != 1:
            return f"{DP_WEIGHT_KEY} must be 1 under differential privacy (the mean is unweighted), got {weight!r}"
        return None

    def check_clipped(self, server_round: int, reply: Message, arrays: NamedArrays) -> str | None:
        """Client-side clipping is the node's promise: an update longer than C is rejected, not averaged."""
        if self.current_arrays is None:
            return "no model was sent this round"
        clip = float(self.dp.clipping_norm)
        sent = dict(self.current_arrays.items())
        squares = sum(float(np.sum((a.astype(np.float64) - sent[k].numpy().astype(np.float64)) ** 2))
                      for k, a in arrays)
        norm = float(np.sqrt(squares))
        if norm > clip * (1 + NORM_TOLERANCE):
            return f"update norm {norm:.6g} exceeds the clipping norm {clip:g} (client-side clipping not applied)"
        return None


def wrap_dp(inner: Strategy, privacy: Privacy) -> Strategy:
    """`inner` wrapped in the configured Flower DP wrapper (or `inner` itself when dp is none)."""
    if not privacy.enabled:
        return inner
    from flwr.serverapp.strategy import (DifferentialPrivacyClientSideFixedClipping,
                                         DifferentialPrivacyServerSideFixedClipping)

    wrapper = {"server-fixed": DifferentialPrivacyServerSideFixedClipping,
               "client-fixed": DifferentialPrivacyClientSideFixedClipping}[privacy.dp]
    return ReplyCalibrated(wrapper(inner, noise_multiplier=privacy.dp_noise_multiplier,
                                   clipping_norm=privacy.dp_clipping_norm, num_sampled_clients=1))


def dp_reply(msg: Message, content: RecordDict, privacy: Privacy) -> RecordDict:
    """The node's unsigned reply as DP needs it: weight 1, and (client-fixed) the update clipped by Flower's
    `fixedclipping_mod` to the norm the instruction carries. The node signs what this returns.

    Raises PolicyError (the node's refusal) when the mod refuses, e.g. an instruction without a clipping norm.
    """
    if not privacy.enabled:
        return content
    content[METRICS_KEY][DP_WEIGHT_KEY] = 1
    if privacy.dp != "client-fixed":
        return content
    from flwr.clientapp.mod import fixedclipping_mod

    unsigned = RecordDict({ARRAYS_KEY: content[ARRAYS_KEY], METRICS_KEY: content[METRICS_KEY]})
    # The mod only hands its Context on to the step it wraps, which needs none.
    out = fixedclipping_mod(msg, cast(Context, None), lambda m, _c: Message(unsigned, reply_to=m))
    if out.has_error():
        raise PolicyError(f"client-side clipping refused: {out.error.reason}")
    return out.content
