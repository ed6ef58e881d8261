"""Faulty-node rehearsal: a simulated node that sends a malformed update on purpose.

Set by the run config key `faults`, e.g. `"3:nan,5:extra-record"` (partition id: kind).
Only simulations use it; a real node never reads this key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from governance.errors import UsageError

if TYPE_CHECKING:  # flwr is imported lazily: the CLI parses --faults before Flower loads
    from flwr.app import ArrayRecord, RecordDict


def _first(arrays: ArrayRecord) -> str:
    return next(iter(arrays.keys()))


def _nan(content: RecordDict) -> None:
    from flwr.app import Array

    arrays = content["arrays"]
    key = _first(arrays)
    values = arrays[key].numpy().copy()
    values.flat[0] = np.nan
    arrays[key] = Array(values)


def _shape(content: RecordDict) -> None:
    from flwr.app import Array

    arrays = content["arrays"]
    key = _first(arrays)
    arrays[key] = Array(np.zeros((3, 3), dtype=np.float32))


def _dtype(content: RecordDict) -> None:
    from flwr.app import Array

    arrays = content["arrays"]
    key = _first(arrays)
    arrays[key] = Array(arrays[key].numpy().astype(np.float64))


def _extra_array(content: RecordDict) -> None:
    from flwr.app import Array

    content["arrays"]["smuggled"] = Array(np.zeros(4, dtype=np.float32))


def _missing_array(content: RecordDict) -> None:
    del content["arrays"][_first(content["arrays"])]


def _missing_num_examples(content: RecordDict) -> None:
    del content["metrics"]["num-examples"]


def _extra_metric(content: RecordDict) -> None:
    content["metrics"]["partition-size-leak"] = 1.0


def _extra_record(content: RecordDict) -> None:
    from flwr.app import ConfigRecord

    content["rows"] = ConfigRecord({"leaked": "raw data must never leave the node"})


def _unsigned(content: RecordDict) -> None:
    del content["governance"]["signature"]


def _forged(content: RecordDict) -> None:
    """Sign with a key the coordinator never registered for this node."""
    from governance.identity import NodeKey

    content["governance"]["signature"] = NodeKey.generate().sign(b"forged by an impostor")


def _bad_npy(content: RecordDict) -> None:
    """Bytes of the right length that are no .npy array: numpy's loader raises on them."""
    from flwr.app import Array

    arrays = content["arrays"]
    key = _first(arrays)
    real = arrays[key]
    arrays[key] = Array(dtype=real.dtype, shape=tuple(real.shape), stype=real.stype, data=b"\x93NUMPY garbage" * 8)


def _foreign_stype(content: RecordDict) -> None:
    from flwr.app import Array

    arrays = content["arrays"]
    key = _first(arrays)
    real = arrays[key]
    arrays[key] = Array(dtype=real.dtype, shape=tuple(real.shape), stype="torch.Tensor", data=real.data)


def _inflated_examples(content: RecordDict) -> None:
    """Claim a million examples (signed, so only the fingerprint's row count can tell)."""
    content["metrics"]["num-examples"] = 1_000_000


def _huge_metric(content: RecordDict) -> None:
    content["metrics"]["train-loss"] = 2**60  # beyond what JSON (RFC 8785) carries exactly


def _deep_fingerprint(content: RecordDict) -> None:
    content["governance"]["fingerprint"] = "[" * 60_000  # nesting that a recursive parser cannot follow


# Applied after the node signed its reply (the others are applied before): a hostile node sends
# whatever it likes after signing, including bytes it could not have digested itself.
SIGNATURE_FAULTS: dict[str, Callable[[RecordDict], None]] = {
    "unsigned": _unsigned, "forged": _forged, "deep-fingerprint": _deep_fingerprint,
    # bytes the node itself could not digest: a hostile node sends them whatever it signed
    "bad-npy": _bad_npy, "foreign-stype": _foreign_stype, "huge-metric": _huge_metric}

FAULTS: dict[str, Callable[[RecordDict], None]] = {
    "nan": _nan,
    "shape": _shape,
    "dtype": _dtype,
    "extra-array": _extra_array,
    "missing-array": _missing_array,
    "missing-num-examples": _missing_num_examples,
    "extra-metric": _extra_metric,
    "extra-record": _extra_record,
    "inflated-examples": _inflated_examples,
    **SIGNATURE_FAULTS,
}


def parse_faults(spec: str) -> dict[int, str]:
    """Parse `"3:nan,5:shape"` into {3: "nan", 5: "shape"}; bad specs fail clearly."""
    faults: dict[int, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        pid, _, kind = item.partition(":")
        if not pid.isdigit() or kind not in FAULTS:
            raise UsageError(
                f"bad fault {item!r}: use PARTITION:KIND with KIND one of {', '.join(FAULTS)}"
            )
        faults[int(pid)] = kind
    return faults


def apply_fault(kind: str, content: RecordDict) -> None:
    """Corrupt a reply in place the way `kind` says."""
    FAULTS[kind](content)
