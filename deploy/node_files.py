"""A team node's own directory, made by `fedgov node init` on the node's machine.

```
<dir>/node.key            the node's fedgov signing key (Ed25519, 0600): it signs every reply
<dir>/<id>.auth           its SuperNode authentication key (OpenSSH ECDSA P-384, 0600)
<dir>/<id>.auth.pub       the public half, for Flower's registration
<dir>/policy.toml         the site file: its own policy (made to refuse every run until its operator
                          fills it in) and its data's path and schema (client/site.py)
<dir>/registration.json   what the coordinator needs to register the node: public keys only
```

Only `registration.json` leaves the machine. Its format, `fedgov.node-registration.v1`, is one
JSON object: `format`, `node_id`, `signing_key` (the Ed25519 public key, 64 hex digits) and
`auth_key` (the OpenSSH public key line).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from governance.errors import UsageError

REGISTRATION_FORMAT = "fedgov.node-registration.v1"
NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_REGISTRATION_BYTES = 4096

POLICY_TEMPLATE = """\
# {node_id}'s own policy: what this node takes part in. It is read on this machine, never sent.
# As made by `fedgov node init`, it refuses every run: fill in the purposes and the app bundles
# (SHA-256 of each FAB) this site approves.
[policy]
purposes = []
app_hashes = []
max_rounds = 100
max_update_bytes = 100000000
min_dp_noise_multiplier = 0.0

# The node's own data: a CSV beside this file, and its layout. Checked on this machine before any
# training; a file that does not match is refused with the reason (docs/deployment.md, "Local data").
[data]
path = "data.csv"

[data.schema]
label = "label"
labels = []

[data.schema.features]
# one line per feature column, in the order the model takes them: name = "float" or "int"
"""


def check_node_id(node_id: str, what: str = "node id", why: str = "") -> str:
    """A node id that can also name files: 1-64 letters, digits, '.', '_' or '-'."""
    if not isinstance(node_id, str) or not NODE_ID.fullmatch(node_id):
        raise UsageError(f"{what} {str(node_id)[:80]!r} must be 1-64 letters, digits, '.', '_' or '-', starting "
                         f"with a letter or digit{why}")
    return node_id


@dataclass(frozen=True)
class Registration:
    """A node's public keys, as the coordinator registers them."""

    node_id: str
    signing_key: bytes  # Ed25519 public key, 32 bytes
    auth_key: str  # OpenSSH public key line (ecdsa-sha2-nistp384 ...)

    def to_json(self) -> bytes:
        return (json.dumps({"format": REGISTRATION_FORMAT, "node_id": self.node_id,
                            "signing_key": self.signing_key.hex(), "auth_key": self.auth_key},
                           indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, source: str) -> "Registration":
        """Parse and check a registration file; one clear line for anything off."""
        if len(data) > MAX_REGISTRATION_BYTES:
            raise UsageError(f"{source} is more than {MAX_REGISTRATION_BYTES} bytes; a node registration is a few hundred")
        try:
            doc: Any = json.loads(data)
        except (ValueError, RecursionError):
            raise UsageError(f"{source} is not JSON; it is the registration.json `fedgov node init` wrote") from None
        if not isinstance(doc, dict) or doc.get("format") != REGISTRATION_FORMAT:
            raise UsageError(f"{source} is not a {REGISTRATION_FORMAT} file (made by `fedgov node init`)")
        if sorted(doc) != ["auth_key", "format", "node_id", "signing_key"]:
            raise UsageError(f"{source}: members must be exactly auth_key, format, node_id, signing_key")
        signing, auth = doc["signing_key"], doc["auth_key"]
        if not isinstance(signing, str) or not re.fullmatch(r"[0-9a-f]{64}", signing):
            raise UsageError(f"{source}: signing_key must be the Ed25519 public key as 64 lower-case hex digits")
        if not isinstance(auth, str) or not auth.startswith("ecdsa-sha2-nistp384 ") or len(auth) > 1024:
            raise UsageError(f"{source}: auth_key must be an OpenSSH ecdsa-sha2-nistp384 public key line")
        return cls(check_node_id(doc["node_id"]), bytes.fromhex(signing), auth.strip())
