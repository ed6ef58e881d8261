"""`fedgov lineage`: which nodes, data versions and consents made each model version."""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from governance.cli.listing import emit
from governance.cli.options import (Format, FormatOpt, IdentityOpt, IdentityPassFileOpt, PassFileOpt, WorkspaceOpt,
                                    open_payload_reader, require_known)

if TYPE_CHECKING:  # rich's Tree loads when a tree is drawn, not on every `fedgov` start-up
    from rich.tree import Tree

app = typer.Typer(name="lineage", help="Model lineage: show a model's history, export W3C PROV, find affected models.",
                  no_args_is_help=True, add_completion=False)


class ExportFormat(str, Enum):
    prov_json = "prov-json"


def _versions(ledger):
    from governance.lineage_store import load_versions

    return load_versions(ledger)


def _resolve(versions, prefix: str) -> str:
    from governance.hashes import resolve_prefix

    return resolve_prefix(prefix, (v.model_hash for v in versions), plural="model versions",
                          not_found=f"no recorded model version matches {prefix!r}; see `fedgov audit log --type "
                                    "round.aggregated`")


@app.command("show")
def show(
    model: Annotated[str, typer.Argument(help="Model hash (or an unambiguous prefix).")],
    run: Annotated[Optional[str], typer.Option("--run", help="The run, where several made the same bytes.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the tree as JSON.")] = False,
    workspace: WorkspaceOpt = None,
    passphrase_file: PassFileOpt = None,
    identity: IdentityOpt = None,
    identity_passphrase_file: IdentityPassFileOpt = None,
) -> None:
    """The tree: model -> round -> parent model, with contributing nodes, fingerprints, consents."""
    from rich.console import Console

    from governance.lineage import lineage_tree

    with open_payload_reader(workspace, passphrase_file, identity, identity_passphrase_file=identity_passphrase_file,
                             what={"command": "lineage show", "model": model, "run": run}) as ledger:
        versions = _versions(ledger)
    tree = lineage_tree(versions, _resolve(versions, model), run_id=run)
    if as_json:
        typer.echo(json.dumps(tree, indent=2))
    else:
        Console().print(render_tree(tree))


def _short(digest: str) -> str:
    return digest[:12]


def render_tree(tree: Mapping[str, Any]) -> Tree:
    """A rich Tree of ``lineage_tree`` output, for ``fedgov lineage show``: drawing is the CLI's job."""
    from rich.tree import Tree

    root: Tree | None = None
    parent_branch: Tree | None = None
    node: Mapping[str, Any] | None = tree
    shown_trigger = None
    while node is not None:
        if node["recorded"]:
            label = f"model {_short(node['model_hash'])} (run {node['run_id']}, round {node['round']})"
        else:
            label = f"model {_short(node['model_hash'])} (not recorded: initial or external)"
        branch = Tree(label) if parent_branch is None else parent_branch.add(label)
        root = root or branch
        trigger = node.get("trigger")
        if trigger is not None and trigger != shown_trigger:  # once per run, where the tree first reaches it
            fired = ", ".join(trigger["fired"]) or "?"
            branch.add(f"retraining trigger: monitor.trigger seq {trigger['seq']} (leaf {_short(trigger['leaf_hash'])}, "
                       f"decision {trigger['decision'] or '?'}, fired {fired})")
        shown_trigger = trigger
        if node["recorded"]:
            contributors = branch.add(f"contributors ({len(node['contributors'])})")
            for c in node["contributors"]:
                contributors.add(
                    f"node {c['node_id']} (team {c['team']}) dataset {_short(c['dataset_fingerprint'])} "
                    f"consent {c['consent_record_id']} update {_short(c['update_digest'])}"
                )
        parent_branch = branch.add("parent") if node.get("parent") is not None else None
        node = node.get("parent")
    assert root is not None
    return root


@app.command("export")
def export(
    fmt: Annotated[ExportFormat, typer.Option("--format", help="prov-json: W3C PROV-JSON.")] = ExportFormat.prov_json,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write here instead of standard output.")] = None,
    workspace: WorkspaceOpt = None,
    passphrase_file: PassFileOpt = None,
    identity: IdentityOpt = None,
    identity_passphrase_file: IdentityPassFileOpt = None,
) -> None:
    """Every recorded model version as W3C PROV-JSON (entities, activities, agents)."""
    from governance.lineage import to_prov_json
    from governance.lineage_store import load_operators

    with open_payload_reader(workspace, passphrase_file, identity, identity_passphrase_file=identity_passphrase_file,
                             what={"command": "lineage export", "format": fmt, "out": out}) as ledger:
        versions = _versions(ledger)
        operators = sorted(set(load_operators(ledger).values()))
    document = json.dumps(to_prov_json(versions, operator=operators[0] if len(operators) == 1 else None), indent=2)
    if out is None:
        typer.echo(document)
    else:
        from governance.errors import UsageError
        from governance.private_files import UMASK_MODE, write_atomic

        if not out.name or out.is_dir() or not out.parent.is_dir():
            raise UsageError(f"--out {str(out)!r}: not a file path in an existing directory")
        try:
            write_atomic(out, document.encode("utf-8"), mode=UMASK_MODE, durable=False)
        except OSError as err:
            raise UsageError(f"cannot write --out {out}: {err.strerror}") from None
        typer.echo(f"wrote {len(versions)} model versions to {out}")


@app.command("affected")
def affected(
    node: Annotated[str, typer.Option("--node", help="The node whose data is in question, e.g. after it withdrew consent.")],
    fmt: FormatOpt = Format.table,
    workspace: WorkspaceOpt = None,
    passphrase_file: PassFileOpt = None,
    identity: IdentityOpt = None,
    identity_passphrase_file: IdentityPassFileOpt = None,
) -> None:
    """Every model version derived, directly or transitively, from the node's updates."""
    from governance.lineage import affected_models
    from governance.names import check_name

    check_name(node, "--node")
    with open_payload_reader(workspace, passphrase_file, identity, identity_passphrase_file=identity_passphrase_file,
                             what={"command": "lineage affected", "node": node}) as ledger:
        require_known(ledger, "node_id", node, "--node")
        versions = _versions(ledger)
    hashes = affected_models(versions, node)
    where = {}
    for v in versions:
        where.setdefault(v.model_hash, []).append(f"{v.run_id}/{v.round}")
    rows = [{"model_hash": h, "made_in": ", ".join(where[h])} for h in hashes]
    emit(rows, fmt, ("model_hash", "made_in"), f"{len(rows)} model versions built with {node}'s data")
