"""`fedgov model`: fetch an archived global model version by its hash."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from governance.cli.options import IdentityOpt, IdentityPassFileOpt, PassFileOpt, WorkspaceOpt, open_payload_reader

app = typer.Typer(name="model", help="The encrypted, content-addressed model archive.",
                  no_args_is_help=True, add_completion=False)


@app.command("get")
def get(
    model: Annotated[str, typer.Argument(help="Model hash (or an unambiguous prefix).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write it: .npz (numpy) or .pt (torch state dict).")],
    workspace: WorkspaceOpt = None,
    passphrase_file: PassFileOpt = None,
    identity: IdentityOpt = None,
    identity_passphrase_file: IdentityPassFileOpt = None,
) -> None:
    """Decrypt a model version, check it against its hash, and write it out."""
    import numpy as np

    from governance.archive import load_model, resolve_hash
    from governance.errors import UsageError
    from governance.private_files import UMASK_MODE, write_atomic

    if out.suffix not in (".npz", ".pt"):
        raise UsageError(f"--out {out} must end in .npz or .pt")
    if not out.parent.is_dir() or out.is_dir():
        raise UsageError(f"--out {out}: {out.parent} is not an existing directory" if not out.parent.is_dir()
                         else f"--out {out} is a directory")
    with open_payload_reader(workspace, passphrase_file, identity, identity_passphrase_file=identity_passphrase_file,
                             what={"command": "model get", "model": model}) as ledger:
        model_hash = resolve_hash(ledger, model)
        arrays = load_model(ledger, model_hash)

    def write(f: BinaryIO) -> None:
        if out.suffix == ".npz":
            np.savez(f, **dict(arrays))
        else:
            import torch

            torch.save({name: torch.from_numpy(a.copy()) for name, a in arrays}, f)

    try:
        write_atomic(out, write, mode=UMASK_MODE, durable=False)
    except OSError as err:
        raise UsageError(f"cannot write --out {out}: {err.strerror}") from None
    typer.echo(f"model {model_hash} ({len(arrays)} arrays) written to {out}")
