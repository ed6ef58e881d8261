"""`--require-cosigned-by` on a bundle (docs/ledger-format.md §5.1, §10.3), shared by both verifiers.

`python -m governance.verify` and `fedgov audit verify --bundle` run this after the bundle
verified: each required witness must have cosigned the bundle's newest checkpoint, in a
`cosignatures/<n>.note` member or a `--cosigned` file.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from governance.verify.bundle import Bundle
from governance.verify.checkpoint import parse_checkpoint
from governance.verify.cosignature import (COSIGNATURE_DIR, Cosignature, CosignatureError, WitnessKey,
                                           read_cosigned_files, require_cosigned, verify_cosigned)
from governance.verify.errors import UsageError


def witness_keys_option(values: Sequence[str]) -> list[WitnessKey]:
    """`--require-cosigned-by`: witness verifier keys, each given as text or as a file of them."""
    keys = []
    for value in values:
        path = Path(value)
        try:
            is_file = path.is_file()
        except (OSError, ValueError):
            is_file = False
        try:
            if is_file:
                lines = path.read_text(encoding="utf-8").split("\n")
                found = [WitnessKey.from_text(line) for line in (raw.strip(" \t\r") for raw in lines)
                         if line and not line.startswith("#")]
                if not found:
                    raise UsageError(f"--require-cosigned-by {value}: the file names no witness key")
                keys += found
            else:
                keys.append(WitnessKey.from_text(value))
        except (CosignatureError, OSError, UnicodeDecodeError) as err:
            raise UsageError(f"--require-cosigned-by {value}: {err}") from None
    return keys


def bundle_cosigned(path: Path, required: Sequence[WitnessKey],
                    cosigned_files: Sequence[Path]) -> tuple[int, list[Cosignature]]:
    """The newest checkpoint's tree size and each required witness's cosignature of it (a verified bundle)."""
    bundle = Bundle(path)
    carried = [verify_cosigned(bundle.text(name), (), required, f"{path}:{name}") for name in sorted(bundle.files)
               if name.startswith(f"{COSIGNATURE_DIR}/") and name.endswith(".note")]
    checkpoints = [parse_checkpoint(row["note"]) for row in bundle.checkpoints()]
    held = {cp.size: cp.root for cp in checkpoints}
    cosigned = carried + read_cosigned_files((), cosigned_files, required)
    return checkpoints[-1].size, require_cosigned(checkpoints[-1], cosigned, required, held)


def describe(cosignature: Cosignature, size: int) -> str:
    """One output line per required witness that cosigned."""
    try:
        when = datetime.fromtimestamp(cosignature.timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        when = f"time {cosignature.timestamp}"
    return f"cosigned: tree size {size} by witness {cosignature.witness.name!r} at {when}"
