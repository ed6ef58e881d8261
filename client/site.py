"""A node's site file: its own policy and its own data, read on its own machine.

The file (`policy.toml`, made by `fedgov node init`) holds `[policy]` and the optional
`[monitoring]` (see client/policy.py) and `[data]`: `path` (the CSV, relative to the file) and `[data.schema]` (fedgov/local_data.py).
A deployed node is pointed at it with `--node-config 'fedgov-site=PATH'`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from client.policy import SitePolicy, monitoring_rule, read_site_file
from fedgov.local_data import DataSchema
from fedgov.summaries import SummaryRule
from governance.errors import UsageError


@dataclass(frozen=True)
class Site:
    """What the site allows, and where its data is and how it is laid out."""

    policy: SitePolicy
    data_path: Path
    schema: DataSchema
    monitoring: SummaryRule  # what the node shares of its data for monitoring (none without [monitoring])

    @classmethod
    def load(cls, path: Path) -> "Site":
        """Read the site file; one clear line naming the key for anything missing or malformed."""
        document = read_site_file(path)
        data = document.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("path"), str) or not data["path"]:
            raise UsageError(f"{path}: [data] must give path = \"FILE.csv\" (relative to this file) and a "
                             "[data.schema] table")
        schema = DataSchema.from_mapping(data.get("schema"), f"{path} [data.schema]")
        return cls(SitePolicy.from_mapping(document["policy"], str(path)), (path.parent / data["path"]), schema,
                   monitoring_rule(document.get("monitoring"), str(path)))


def site_file_text(purposes: list[str], app_hashes: list[str], schema: DataSchema, data_path: str = "data.csv",
                   max_rounds: int = 100, max_update_bytes: int = 100_000_000, share_summaries: bool = True) -> str:
    """A filled-in site file, as `fedgov federation up` writes one for each node it makes (and tests do)."""
    import json

    shape = f"shape = {json.dumps(list(schema.shape))}\n" if schema.shape else ""
    features = "".join(f"{json.dumps(f.name)} = {json.dumps(f.type)}\n" for f in schema.features)
    return (f"[policy]\npurposes = {json.dumps(purposes)}\napp_hashes = {json.dumps(app_hashes)}\n"
            f"max_rounds = {max_rounds}\nmax_update_bytes = {max_update_bytes}\nmin_dp_noise_multiplier = 0.0\n\n"
            f"[monitoring]\nshare = {json.dumps(share_summaries)}\nmin_count = 5\nnoise = \"none\"\nnoise_scale = 0.0\n\n"
            f"[data]\npath = {json.dumps(data_path)}\n\n"
            f"[data.schema]\nlabel = {json.dumps(schema.label)}\nlabels = {json.dumps(list(schema.labels))}\n{shape}\n"
            f"[data.schema.features]\n{features}")
