"""Typed errors that the CLI turns into one clear line and an exit code.

Exit codes follow the CLI convention: 1 for a verification or policy failure,
2 for a usage error (bad input, missing file, wrong key).
"""


class FedgovError(Exception):
    """A user-facing error: the message names what is wrong and how to fix it."""

    exit_code: int = 2


class UsageError(FedgovError):
    """Bad input from the user: a wrong flag, a missing file, a wrong passphrase."""

    exit_code = 2


class VerificationError(FedgovError):
    """A check failed: tampering, a bad signature, an inconsistent checkpoint."""

    exit_code = 1


class PolicyError(FedgovError):
    """A governance policy refused the action: missing consent, a failed round."""

    exit_code = 1
