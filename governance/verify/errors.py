"""The roots of fedgov's errors, here so the verifier needs nothing above it.

Exit codes follow the CLI convention: 1 for a failed check or policy, 2 for a usage error.
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
