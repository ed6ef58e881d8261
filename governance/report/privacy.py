"""The report's privacy data, pure: ε spent per node against its cap (`round.privacy`), the nodes excluded
for their budget (`round.selection`), and SecAgg+ participation (`round.secagg`).

ε is recomputed from the recorded DP events (`budget.replay`: every run's releases, since a node's
budget spans runs) and set beside the figure the coordinator recorded (`epsilon_after`): a
difference is shown, not smoothed over.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from governance.report import budget
from governance.report.fields import integer, mapping, names, number, text
from governance import entry_types as et
from governance.privacy.budget import PRIVACY_BUDGET as BUDGET_REASON  # the selection state of a spent budget
from governance.report.source import Recorded

ROUND_PRIVACY = et.ROUND_PRIVACY
ROUND_SECAGG = et.ROUND_SECAGG
AGREE = 1e-6  # recomputed and recorded ε agree when within this (relative)


@dataclass(frozen=True)
class PrivacyRound:
    round: int
    dp: str
    mechanism: str
    noise_multiplier: float | None
    clipping_norm: float | None
    delta: float | None
    accountant: str
    participants: list[str]


@dataclass(frozen=True)
class NodeBudget:
    node: str
    rounds: list[int]  # rounds it took part in under DP
    before: float  # recomputed ε of its releases in earlier runs
    spent: list[tuple[int, float]]  # recomputed ε after each of its rounds (earlier runs included)
    recorded: float | None  # the coordinator's epsilon_after at its last round
    cap: float | None
    excluded: list[tuple[int, str]]  # rounds it was left out of for its budget, with the recorded projection

    @property
    def total(self) -> float:
        return self.spent[-1][1] if self.spent else self.before

    @property
    def remaining(self) -> float | None:
        return None if self.cap is None else max(0.0, self.cap - self.total)

    @property
    def agrees(self) -> bool | None:
        """Whether the recomputed ε agrees with the recorded one (None: nothing recorded to compare)."""
        if self.recorded is None:
            return None
        return abs(self.recorded - self.total) <= AGREE * max(1.0, abs(self.total))


@dataclass(frozen=True)
class SecAggRound:
    round: int
    protocol: str
    num_shares: int | None
    threshold: int | None
    selected: list[str]
    completed: list[str]
    dropped: list[str]
    aggregate_hash: str  # "" when the round built no aggregate
    individual_updates_visible: bool | None
    stages: dict[str, int]  # protocol stage -> how many nodes took part in it


@dataclass(frozen=True)
class Privacy:
    rounds: list[PrivacyRound]
    budgets: list[NodeBudget]
    run_cap: float | None  # privacy-max-epsilon, when the run set one
    accountant: str  # how the report recomputed ε
    problem: str  # why the releases could not all be accounted ("" when they could)
    not_recorded: str | None
    secagg: list[SecAggRound]
    secagg_not_recorded: str | None


def build_privacy(entries: Sequence[Recorded], config: dict[str, Any] | None,
                  selections: dict[int, dict[str, Any]], other_releases: Sequence[Recorded] = (),
                  run_id: str = "") -> Privacy:
    """ε per node from round.privacy (this run's, and `other_releases` of other runs, which count towards the
    same nodes' budgets), exclusions from the selections, SecAgg+ from round.secagg."""
    rounds: list[PrivacyRound] = []
    recorded: dict[str, float] = {}
    caps: dict[str, float] = {}
    for e in sorted((e for e in entries if e.entry_type == ROUND_PRIVACY and e.payload is not None),
                    key=lambda e: (e.round or 0, e.seq)):
        p = e.payload or {}
        r = e.round if e.round is not None else integer(p.get("round"))
        if r is None:
            continue
        rounds.append(PrivacyRound(r, text(p.get("dp")), text(p.get("mechanism")), number(p.get("noise_multiplier")),
                                   number(p.get("clipping_norm")), number(p.get("delta")), text(p.get("accountant")),
                                   names(p.get("participants"))))
        recorded.update({text(n): v for n, value in mapping(p.get("epsilon_after")).items()
                         if (v := number(value)) is not None})
        caps.update({text(n): v for n, value in mapping(p.get("caps")).items() if (v := number(value)) is not None})
    run = run_id or next((e.run_id for e in entries), "")
    events = [_event(e) for e in [*entries, *other_releases] if e.entry_type == ROUND_PRIVACY and e.payload]
    replay = budget.replay([x for x in events if x is not None], run)
    spent = replay.after
    excluded: dict[str, list[tuple[int, str]]] = {}
    for r, selection in sorted(selections.items()):
        projections = mapping((selection or {}).get("privacy"))
        for node, reason in mapping((selection or {}).get("excluded")).items():
            if BUDGET_REASON in text(reason):
                excluded.setdefault(text(node), []).append((r, _projection(mapping(projections.get(node)))))
    run_cap = number((config or {}).get("privacy-max-epsilon")) or None
    caps = {**_configured_caps(config), **caps}
    nodes = sorted({*spent, *excluded, *recorded})
    budgets = [NodeBudget(n, [r for r, _ in spent.get(n, [])], replay.before.get(n, 0.0), spent.get(n, []),
                          recorded.get(n), caps.get(n, run_cap), excluded.get(n, [])) for n in nodes]
    not_recorded = None if rounds else _why_no_dp(config)
    secagg = _secagg(entries)
    return Privacy(rounds, budgets, run_cap, budget.ACCOUNTANT, replay.problem, not_recorded, secagg,
                   None if secagg else _why_no_secagg(config))


def _event(e: Recorded) -> budget.DpEvent | None:
    """A recorded release as the accountant replays it; its round from the index (or the payload)."""
    p = e.payload or {}
    r = e.round if e.round is not None else integer(p.get("round"))
    if r is None:
        return None
    # a missing or non-finite field goes on as NaN: the accountant refuses it by name rather than reading it as 0
    sigma, delta = number(p.get("noise_multiplier")), number(p.get("delta"))
    return budget.DpEvent(e.seq, e.run_id, r, math.nan if sigma is None else sigma,
                          math.nan if delta is None else delta, names(p.get("participants")))


def _projection(found: dict[str, Any]) -> str:
    """round.selection's recorded projection of an excluded node: ε now, after one more round, its cap."""
    now, nxt, cap = (number(found.get(k)) for k in ("epsilon_spent", "epsilon_next", "epsilon_cap"))
    if nxt is None or cap is None:
        return "projection not recorded"
    spent = "" if now is None else f"ε {now:.4g} now, "
    return f"{spent}{nxt:.4g} after one more round > cap {cap:g}"


def _configured_caps(config: dict[str, Any] | None) -> dict[str, float]:
    """privacy-budgets ("sim-0002:1.5,sim-0005:3") as recorded in the run config; unreadable parts are skipped."""
    caps = {}
    for part in text((config or {}).get("privacy-budgets")).split(","):
        node, _, value = part.strip().partition(":")
        try:
            caps[node.strip()] = float(value)
        except ValueError:
            continue
    return caps


def _why_no_dp(config: dict[str, Any] | None) -> str:
    if config is None:
        return "the run has no readable run.started entry, so whether it used differential privacy is not recorded"
    if "dp" not in config:
        return ("no differential privacy in this run: it was recorded by a fedgov without it (its run config has "
                "no 'dp' key)")
    if text(config.get("dp")) in ("", "none"):
        return "no differential privacy in this run (run config dp = none): no ε was spent, none is accounted"
    return (f"differential privacy was configured (dp = {text(config.get('dp'))}), but no round.privacy entry "
            "was recorded: no round ran under it")


def _secagg(entries: Sequence[Recorded]) -> list[SecAggRound]:
    out = []
    for e in entries:
        if e.entry_type != ROUND_SECAGG or e.payload is None or e.round is None:
            continue
        p = e.payload
        visible = p.get("individual_updates_visible")
        out.append(SecAggRound(e.round, text(p.get("protocol")), integer(p.get("num_shares")),
                               integer(p.get("reconstruction_threshold")), names(p.get("selected")),
                               names(p.get("completed")), names(p.get("dropped")), text(p.get("aggregate_hash")),
                               visible if isinstance(visible, bool) else None,
                               {text(k): len(names(v)) for k, v in mapping(p.get("stages")).items()}))
    return sorted(out, key=lambda x: x.round)


def _why_no_secagg(config: dict[str, Any] | None) -> str:
    if config is None or "secagg" not in config:
        return ("no secure aggregation in this run: it was recorded by a fedgov without SecAgg+ (its run config "
                "has no 'secagg' key); each node's update digest is in its round.reply")
    if config.get("secagg") is True:
        return "SecAgg+ was configured (secagg = true), but no round.secagg entry was recorded"
    return ("no secure aggregation in this run (run config secagg = false): the server saw each node's update, "
            "whose digest is in its round.reply")
