"""Typed errors that the CLI turns into one clear line and an exit code.

Exit codes follow the CLI convention: 1 for a verification or policy failure,
2 for a usage error (bad input, missing file, wrong key). The three roots are defined
with the standalone verifier (governance/verify/errors.py), which raises them too.
"""

from governance.verify.errors import FedgovError, UsageError, VerificationError

__all__ = ["FedgovError", "PolicyError", "UsageError", "VerificationError"]


class PolicyError(FedgovError):
    """A governance policy refused the action: missing consent, a failed round."""

    exit_code = 1
