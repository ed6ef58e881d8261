"""The coordinator's keys in a simulation travel over a pipe, never through the environment.

Every process the Simulation Engine starts (Ray's raylet and the workers that run each
simulated node's ClientApp) inherits the environment of the process that started it. If
`FEDGOV_PASSPHRASE` were there, node code could open the coordinator's keystore. So
`fedgov sim run` takes the secrets out of the child's environment and writes them, as one
JSON object, into a pipe whose read end only the child holds (its number in
`FEDGOV_KEYS_FD`). The child reads them before Flower starts, and the ServerApp, which runs
in that same process, opens the ledger with them.

`fedgov server start` hands them to its gatekeeper (deploy/coordinator_gate.py) the same way;
the gatekeeper puts them only in the environment of an approved ServerApp's process.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from typing import Any

SECRET_VARIABLES = ("FEDGOV_PASSPHRASE", "FEDGOV_KEK", "FEDGOV_SIGNING_KEY")
FD_VARIABLE = "FEDGOV_KEYS_FD"

_received: dict[str, str] = {}


def split_secrets(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(the environment without the secrets, the secrets)."""
    clean = {k: v for k, v in env.items() if k not in SECRET_VARIABLES}
    return clean, {k: env[k] for k in SECRET_VARIABLES if env.get(k)}


def hand_over(secrets: Mapping[str, str], env: dict[str, str]) -> int:
    """Write `secrets` into a new pipe; name its read end in `env`. Returns that fd, to pass to the child."""
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as pipe:
        pipe.write(json.dumps(dict(secrets)).encode("utf-8"))  # far below a pipe's buffer
    env[FD_VARIABLE] = str(read_end)
    return read_end


def receive() -> None:
    """In the child: read the handed-over secrets, if any, and forget where they came from."""
    fd = os.environ.pop(FD_VARIABLE, None)
    if fd is None:
        return
    with os.fdopen(int(fd), "rb") as pipe:
        _received.update(json.loads(pipe.read().decode("utf-8")))


def handed_over() -> dict[str, str]:
    """What `receive` read: the secrets as environment variables, for a process that passes them on."""
    return dict(_received)


def ledger_credentials() -> dict[str, Any]:
    """Keyword arguments for `Ledger.open` from what was handed over (empty: the ledger reads its env)."""
    from governance.keystore import KeyMaterial

    if "FEDGOV_KEK" in _received and "FEDGOV_SIGNING_KEY" in _received:
        return {"keys": KeyMaterial(kek=base64.b64decode(_received["FEDGOV_KEK"]),
                                    signing_seed=base64.b64decode(_received["FEDGOV_SIGNING_KEY"]), from_env=True)}
    if "FEDGOV_PASSPHRASE" in _received:
        return {"passphrase": _received["FEDGOV_PASSPHRASE"]}
    return {}
