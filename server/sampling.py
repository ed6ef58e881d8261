"""Seeded node sampling that anyone can recompute from the seed, round and candidates."""

from __future__ import annotations

import hashlib
import random
from typing import Sequence


def round_rng(seed: int, server_round: int) -> random.Random:
    """An RNG for one round, derived from the run seed only (no global state)."""
    digest = hashlib.sha256(f'{{"round":{server_round},"seed":{seed}}}'.encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def seeded_sample(seed: int, server_round: int, candidates: Sequence[int], k: int) -> list[int]:
    """Draw `k` of the sorted candidates; the same inputs give the same nodes."""
    pool = sorted(candidates)
    return sorted(round_rng(seed, server_round).sample(pool, min(k, len(pool))))
