"""The device a node trained on, as its signed reply states it: `cpu`, or `cuda:N (device name)`.

The node adds it to its governance statement (`device`), and it is one more member of the
signed object (docs/governance.md), so the ledger's `round.reply` and `rounds.json` say per
node where the update was computed, attributable to the node's key: what `bench/gpu_check.py`
counts to prove a GPU run trained on CUDA. It is the node's own claim, like its metrics.

A statement without it (a node of an earlier fedgov) is still accepted and signs exactly the
bytes it always did; a present one must be this shape, at most `MAX_DEVICE_TEXT` characters of
printable ASCII, or the reply is rejected by name (`bad device`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from governance.identity import MAX_DEVICE_TEXT

if TYPE_CHECKING:
    import torch

DEVICE_KEY = "device"  # in the reply's governance statement (client/attestation.py)
_DEVICE = re.compile(r"cpu|cuda:\d{1,3}(?: \([\x20-\x7e]{1,100}\))?")


def device_text(device: "torch.device") -> str:
    """What a node states for the device it trained on: `cpu`, or `cuda:0 (NVIDIA H200)` (the index as this
    process sees it: Ray shows each actor only its share of GPUs)."""
    import torch

    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    name = " ".join(torch.cuda.get_device_name(index).split())
    name = "".join(c for c in name if " " <= c <= "~")[:100]
    return f"cuda:{index} ({name})" if name else f"cuda:{index}"


def device_problem(value: object) -> str | None:
    """Why a stated device is unacceptable (hostile input: any type, any length), or None."""
    if not isinstance(value, str) or len(value) > MAX_DEVICE_TEXT or not _DEVICE.fullmatch(value):
        shown = repr(value) if not isinstance(value, (str, bytes)) or len(value) <= 40 else repr(value[:40]) + "…"
        return (f"bad device: {shown} is not 'cpu' or 'cuda:N (name)' of at most {MAX_DEVICE_TEXT} printable "
                "ASCII characters")
    return None


def device_kind(value: object) -> str:
    """`cuda`, `cpu`, or `not recorded` (a reply without the statement's device, or none at all)."""
    if isinstance(value, str) and device_problem(value) is None:
        return value.split(":")[0]
    return "not recorded"
