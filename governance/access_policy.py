"""The read policy: which role may read the payloads of which entry type (docs/access-policy.md).

Two classes of payload. *Operator-readable* ones are what the coordinator must read to
operate (registry, consent, run and round decisions, the ledger's own records): the operator,
auditors and, for their own node, node-admins read them. *Sealed* ones are what nodes said
about themselves (`round.reply`, `round.rejected`, `round.evaluated`, `round.failed`) and who
read what (`audit.read`): auditors only (node-admins: their own node's round entries).

The policy is in force once the ledger has an auditor: from then on a writer encrypts sealed
types under data keys wrapped only to the auditors (and the node's admins), never under the
KEK, so the check below is backed by cryptography for every payload written since. Before
that there is nobody to seal for, and the operator reads everything as before.
"""

from __future__ import annotations

from governance import entry_types as et
from governance.errors import PolicyError
from governance.identities import AUDITOR, NODE_ADMIN, OPERATOR

POLICY_DOC = "docs/access-policy.md"

# What nodes said about themselves, and who read the ledger: auditors only.
SEALED_TYPES = frozenset({et.ROUND_REPLY, et.ROUND_REJECTED, et.ROUND_EVALUATED, et.ROUND_FAILED, et.AUDIT_READ})
# What a node-admin may read, of its own node only (entries whose node_id is its node).
NODE_ADMIN_TYPES = frozenset({et.ROUND_REPLY, et.ROUND_REJECTED, et.ROUND_EVALUATED, et.ROUND_FAILED,
                              et.CONSENT_GRANTED, et.CONSENT_WITHDRAWN})
# What an identity (rather than the operator's keys) may append: its own reads.
IDENTITY_WRITABLE_TYPES = frozenset({et.AUDIT_READ})
SEALED_LABEL = "sealed (auditors only)"  # what a listing shows for a payload its reader may not open


class AccessDenied(PolicyError):
    """The read policy does not let this role read this payload (exit 1)."""


def is_sealed(entry_type: str) -> bool:
    """Whether payloads of this type are sealed to auditors (once the ledger has one)."""
    return et.LEGACY_NAMES.get(entry_type, entry_type) in SEALED_TYPES


def may_read(role: str, entry_type: str, entry_node: str, reader_node: str | None, in_force: bool) -> bool:
    """Whether `role` (bound to `reader_node` for a node-admin) may read a payload of `entry_type`."""
    entry_type = et.LEGACY_NAMES.get(entry_type, entry_type)
    if role == AUDITOR:
        return True
    if role == OPERATOR:
        return not (in_force and entry_type in SEALED_TYPES)
    if role == NODE_ADMIN:
        return entry_type in NODE_ADMIN_TYPES and bool(entry_node) and entry_node == reader_node
    return False


def check_read(role: str, entry_type: str, entry_node: str, reader_node: str | None, in_force: bool) -> None:
    """Raise AccessDenied, one line naming role, entry type and the policy, unless `may_read`."""
    if may_read(role, entry_type, entry_node, reader_node, in_force):
        return
    if role == NODE_ADMIN:
        whose = f" of node {entry_node}" if entry_node else ""
        raise AccessDenied(f"role node-admin (node {reader_node}) may not read {entry_type} payloads{whose} "
                           f"({POLICY_DOC})")
    raise AccessDenied(f"role {role} may not read {entry_type} payloads ({POLICY_DOC}); read with an auditor "
                       "identity (--identity)")


def grantee_roles(scope: str, sealed: bool) -> tuple[str, ...]:
    """Roles whose identities receive a data key of `scope` (node-admins: only their node's scope)."""
    if sealed:
        return (AUDITOR,) if scope == et.AUDIT_SCOPE else (AUDITOR, NODE_ADMIN)
    return (AUDITOR, OPERATOR, NODE_ADMIN)


def receives(role: str, node: str | None, scope: str, sealed: bool) -> bool:
    """Whether an identity of `role` (bound to `node`) is granted a data key of `scope`."""
    if role not in grantee_roles(scope, sealed):
        return False
    return role != NODE_ADMIN or scope == et.node_scope(node or "")
