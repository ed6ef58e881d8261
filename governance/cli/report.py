"""`fedgov report RUN --out report.html`: the compliance report of one run, one self-contained HTML file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from governance.cli.options import PassFileOpt, WorkspaceOpt, open_reader
from governance.errors import UsageError


def report(run: Annotated[str, typer.Argument(help="The run id (see `fedgov audit log --type run.started`).")],
           out: Annotated[Path, typer.Option("--out", help="The HTML file to write.")],
           force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
           workspace: WorkspaceOpt = None, passphrase_file: PassFileOpt = None) -> None:
    """Write one run's compliance report: metrics, participation, consent, fingerprints, lineage, verification, GDPR Art. 30."""
    from governance.clock import utc_now
    from governance.errors import VerificationError
    from governance.names import check_name
    from governance.report.html import render_html
    from governance.report.model import build_report
    from governance.report.source import read_run

    check_name(run, "RUN")
    _check_out(out, force)
    with open_reader(workspace, passphrase_file) as ledger:  # reader: switch to open_payload_reader
        facts = read_run(ledger, run, generated_at=utc_now())
    data = build_report(facts)
    write_report(out, render_html(data).encode("utf-8"), force)
    verdict = "verified" if data.verification.ok else "VERIFICATION FAILED"
    typer.echo(f"wrote the report of run {run} to {out}: {len(data.rounds)} rounds, {len(data.nodes)} nodes; "
               f"ledger {verdict}")
    if not data.verification.ok:
        raise VerificationError(f"the ledger does not verify ({data.verification.message}); the report says so")


def _check_out(out: Path, force: bool) -> None:
    if not out.name or out.is_dir() or not out.parent.is_dir():
        raise UsageError(f"--out {str(out)!r}: not a file path in an existing directory")
    if out.exists() and not force:
        raise UsageError(f"--out {out} exists; pass --force to replace it")


def write_report(out: Path, data: bytes, force: bool) -> None:
    """Write atomically: a reader sees no file or the whole report. Without `force`, never replace one,
    even one made meanwhile (the finished temp file is hard-linked into place, which fails if it exists)."""
    from governance.private_files import UMASK_MODE, write_atomic

    try:
        if force:
            write_atomic(out, data, mode=UMASK_MODE, durable=False)
            return
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            write_atomic(tmp, data, mode=UMASK_MODE, durable=False)
            os.link(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    except FileExistsError:
        raise UsageError(f"--out {out} exists; pass --force to replace it") from None
    except OSError as err:
        raise UsageError(f"cannot write --out {out}: {err.strerror}") from None
