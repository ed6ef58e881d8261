"""`python -m governance.verify BUNDLE [--trusted-key KEY|FILE] [--known-checkpoint FILE]... [--require-cosigned-by
VKEY [--cosigned FILE]...]`: a bundle, checked, and optionally its newest checkpoint's witness cosignatures.

Needs only this package and `cryptography`. Prints `verified: …` (exit 0), or every failure as
one `error: …` line on stderr (exit 1; 2 for bad input). `fedgov audit verify --bundle` runs the
same checks and prints the same lines.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from governance.verify.bundle_check import verify_bundle
from governance.verify.bundle_cosigned import bundle_cosigned, describe, witness_keys_option
from governance.verify.errors import FedgovError, UsageError
from governance.verify.inputs import trusted_keys_option


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other bad input
        raise UsageError(f"{message} (usage: python -m governance.verify BUNDLE [--trusted-key KEY|FILE] "
                         "[--known-checkpoint FILE]... [--require-cosigned-by VKEY [--cosigned FILE]...])")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m governance.verify", description=__doc__)
    parser.add_argument("bundle", type=Path, help="the evidence bundle (a zip, `fedgov audit export`)")
    parser.add_argument("--trusted-key", help="verifier key text, or a trust file (default: the bundle's own)")
    parser.add_argument("--known-checkpoint", type=Path, action="append", default=[],
                        help="a checkpoint note kept from before; the bundle must hold it (repeatable)")
    parser.add_argument("--require-cosigned-by", action="append", default=[],
                        help="a witness's verifier key (or a file of them): fail unless it cosigned the bundle's "
                             "newest checkpoint (repeatable)")
    parser.add_argument("--cosigned", type=Path, action="append", default=[],
                        help="a cosigned checkpoint file to read besides the bundle's cosignatures/ (repeatable)")
    cosigners: list = []
    size = 0
    try:
        args = parser.parse_args(argv)
        if args.cosigned and not args.require_cosigned_by:
            raise UsageError("--cosigned goes with --require-cosigned-by")
        witnesses = witness_keys_option(args.require_cosigned_by)
        keys = trusted_keys_option(args.trusted_key) if args.trusted_key else None
        report = verify_bundle(args.bundle, keys, args.known_checkpoint)
        if witnesses:
            size, cosigners = bundle_cosigned(args.bundle, witnesses, args.cosigned)
    except FedgovError as err:
        for line in getattr(err, "failures", [str(err)]):
            print(f"error: {' '.join(line.split())}", file=sys.stderr)
        return err.exit_code
    print("\n".join(report.lines() + [describe(c, size) for c in cosigners]))
    if keys is None:
        print("note: trusted the bundle's key that signed your --known-checkpoint" if args.known_checkpoint else
              "note: trusted the key shipped in the bundle; pass --trusted-key to pin your own copy", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
