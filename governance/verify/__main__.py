"""`python -m governance.verify BUNDLE [--trusted-key KEY|FILE] [--known-checkpoint FILE]...`: a bundle, checked.

Needs only this package and `cryptography`. Prints `verified: …` (exit 0), or every failure as
one `error: …` line on stderr (exit 1; 2 for bad input). `fedgov audit verify --bundle` runs the
same checks and prints the same lines.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from governance.verify.bundle_check import verify_bundle
from governance.verify.errors import FedgovError, UsageError
from governance.verify.inputs import trusted_keys_option


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other bad input
        raise UsageError(f"{message} (usage: python -m governance.verify BUNDLE [--trusted-key KEY|FILE] "
                         "[--known-checkpoint FILE]...)")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m governance.verify", description=__doc__)
    parser.add_argument("bundle", type=Path, help="the evidence bundle (a zip, `fedgov audit export`)")
    parser.add_argument("--trusted-key", help="verifier key text, or a trust file (default: the bundle's own)")
    parser.add_argument("--known-checkpoint", type=Path, action="append", default=[],
                        help="a checkpoint note kept from before; the bundle must hold it (repeatable)")
    try:
        args = parser.parse_args(argv)
        keys = trusted_keys_option(args.trusted_key) if args.trusted_key else None
        report = verify_bundle(args.bundle, keys, args.known_checkpoint)
    except FedgovError as err:
        for line in getattr(err, "failures", [str(err)]):
            print(f"error: {' '.join(line.split())}", file=sys.stderr)
        return err.exit_code
    print("\n".join(report.lines()))
    if keys is None:
        print("note: trusted the bundle's key that signed your --known-checkpoint" if args.known_checkpoint else
              "note: trusted the key shipped in the bundle; pass --trusted-key to pin your own copy", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
