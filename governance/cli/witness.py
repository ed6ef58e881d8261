"""`fedgov audit witness`: countersign a ledger's checkpoints after checking they extend what was seen.

Also the `audit verify --require-cosigned-by` check, which reads the cosignatures back.
Heavy imports stay inside the commands, as in governance/cli/audit.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from governance.cli.options import WorkspaceOpt
from governance.errors import UsageError

if TYPE_CHECKING:
    from governance.verify.cosignature import Cosignature, WitnessKey

app = typer.Typer(name="witness", no_args_is_help=True, add_completion=False,
                  help="Be a witness: cosign a ledger's checkpoints (C2SP tlog-cosignature) only while they extend "
                       "the ones cosigned before, so that a split view or a rollback is refused.")

StateOpt = Annotated[Path, typer.Option("--state", help="The witness's own directory: its key and the last checkpoint it cosigned per log.")]


@app.command("init")
def init(name: Annotated[str, typer.Option("--name", help="Witness key name, e.g. witness.example.org/w1.")],
         state: StateOpt) -> None:
    """Make a witness: an Ed25519 key (private, 0600) and an empty state in --state; prints its verifier key."""
    from governance.witness import init_witness

    key = init_witness(state, name)
    typer.echo(f"initialised witness {name!r} in {state}")
    typer.echo(f"verifier key: {key.to_text()}")


@app.command("cosign")
def cosign(state: StateOpt, workspace: WorkspaceOpt = None,
           bundle: Annotated[Optional[Path], typer.Option("--bundle", help="Cosign an evidence bundle's latest checkpoint instead (needs --out: a bundle is not changed after export); its checkpoints chain the proof.")] = None,
           log_key: Annotated[Optional[str], typer.Option("--log-key", help="The log's verifier key, pinned at first use (default then: the workspace's or bundle's trusted_keys).")] = None,
           out: Annotated[Optional[Path], typer.Option("--out", help="Also write the cosigned note (the log's note and this cosignature) to this file.")] = None) -> None:
    """Check the latest signed checkpoint extends the one cosigned before (RFC 9162 proof), then cosign it.

    Writes `<workspace>/cosignatures/<tree size>.note` (with --bundle: only --out) and advances the state.
    """
    from governance.private_files import UMASK_MODE, write_atomic
    from governance.verify.checkpoint import CheckpointError, VerifierKey
    from governance.verify.cosignature import COSIGNATURE_DIR
    from governance.witness import BundleSource, Witness, WorkspaceSource, store_cosignature

    if workspace is not None and bundle is not None:
        raise UsageError("give --workspace or --bundle, not both")
    if bundle is not None and out is None:
        raise UsageError("with --bundle, give --out FILE: a bundle is not changed after export; hand the file to "
                         "`fedgov audit verify --bundle B --cosigned FILE`")
    pinned = None
    if log_key is not None:
        try:
            pinned = VerifierKey.from_text(log_key)
        except CheckpointError as err:
            raise UsageError(f"--log-key: {err}") from None
    witness = Witness(state)
    source = BundleSource(bundle) if bundle is not None else WorkspaceSource(workspace)
    try:
        done = witness.cosign(source, pinned)
    finally:
        source.close()
    if done.pinned_from:
        typer.echo(f"first checkpoint of {done.checkpoint.origin} this witness sees: pinned log key "
                   f"{done.log_key.to_text()} (from {done.pinned_from})", err=True)
    if out is not None:  # first: the state has advanced, so the cosignature must reach somewhere
        try:
            write_atomic(out, done.cosigned_note.encode("utf-8"), mode=UMASK_MODE, durable=False)
        except OSError as err:
            raise UsageError(f"cannot write --out {out}: {err.strerror}") from None
    path = out if bundle is not None else store_cosignature(source.ws.path / COSIGNATURE_DIR, done, witness.key)
    since = ("first use" if done.previous is None else
             f"consistent with tree size {done.previous.size}, cosigned before")
    typer.echo(f"cosigned tree size {done.checkpoint.size} of {done.checkpoint.origin} ({since}); wrote {path}")
    typer.echo(done.line)


def check_cosigned(workspace: Path | None, bundle: Path | None, required: list[WitnessKey],
                   cosigned_files: list[Path]) -> tuple[int, list[Cosignature]]:
    """Every required witness cosigned the latest signed checkpoint (after the ledger itself verified).

    Returns that checkpoint's tree size and each witness's newest cosignature on it.

    Cosignatures come from `<workspace>/cosignatures/` (a bundle's `cosignatures/` members) and the `--cosigned`
    files.
    """
    from governance.verify.checkpoint import parse_checkpoint
    from governance.verify.cosignature import COSIGNATURE_DIR, read_cosigned_files, require_cosigned

    if bundle is not None:  # the travelling verifier's own check (python -m governance.verify)
        from governance.verify.bundle_cosigned import bundle_cosigned

        return bundle_cosigned(bundle, required, cosigned_files)
    from governance.ledger import Ledger
    from governance.workspace import Workspace

    ws = Workspace.discover(workspace)
    with Ledger.open_readonly(ws) as ledger, ledger.store.read() as conn:
        rows = ledger.store.checkpoints(conn)
    directories = [ws.path / COSIGNATURE_DIR]
    checkpoints = [parse_checkpoint(row["note"]) for row in rows]  # verified already, by `audit verify`
    held = {cp.size: cp.root for cp in checkpoints}
    cosigned = read_cosigned_files(directories, cosigned_files, required)
    return checkpoints[-1].size, require_cosigned(checkpoints[-1], cosigned, required, held)


def witness_keys_option(values: list[str]) -> list[WitnessKey]:
    """`--require-cosigned-by`: witness verifier keys (the travelling verifier's parser: same keys, same errors)."""
    from governance.verify.bundle_cosigned import witness_keys_option as parse

    return parse(values)


def describe(cosignature: Cosignature, size: int) -> str:
    """One output line of `audit verify` per required witness (the travelling verifier prints the same)."""
    from governance.verify.bundle_cosigned import describe as line

    return line(cosignature, size)
