"""`fedgov node register`: a node joins Flower's registry and fedgov's ledger together, or neither.

Flower's SuperLink (with `--enable-supernode-auth`) admits only SuperNodes whose auth key was
registered through its Control API; the name registered is the node's fedgov id, which is how
the coordinator binds each Flower node to the fedgov node whose signature it checks
(`server/node_binding.py`). fedgov's ledger records the node's signing key, team, Flower node
id and the SHA-256 of its auth key (SubjectPublicKeyInfo DER). The ledger is opened first (a
wrong passphrase changes nothing); if the ledger write then fails, the Flower registration is
undone, so the two never disagree.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from deploy.node_files import Registration
from governance.errors import PolicyError, UsageError
from governance.ledger import Ledger
from governance.node_store import load_registry, register_nodes


def auth_key(registration: Registration) -> ec.EllipticCurvePublicKey:
    """The node's SuperNode auth key, parsed from its OpenSSH line; P-384 only."""
    try:
        key = serialization.load_ssh_public_key(registration.auth_key.encode())
    except (ValueError, TypeError) as err:
        raise UsageError(f"node {registration.node_id}: auth_key is not an OpenSSH public key ({err})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise UsageError(f"node {registration.node_id}: auth_key must be an ECDSA P-384 key")
    return key


def check_ca_certificate(data: bytes, ca: Path) -> None:
    """Refuse what is not a PEM certificate before Flower's gRPC stack reads it (it raises a bare ValueError)."""
    from cryptography import x509

    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise UsageError(f"the CA certificate {ca} holds no PEM certificate: pass the federation's ca.crt (from "
                         "`fedgov certs ca`)") from None


def control_client(superlink: str, ca: Path):
    """Flower's own Control API client, over TLS, trusting only the federation's CA."""
    from flwr.supercore.control import ControlHttpClient
    from flwr.supercore.interceptors.http.runtime_version import RuntimeVersionHttpInterceptor

    try:
        root = ca.read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read the CA certificate {ca}: {err.strerror}") from None
    check_ca_certificate(root, ca)
    return ControlHttpClient.from_server_address(superlink, insecure=False, root_certificates=root,
                                                 interceptors=[RuntimeVersionHttpInterceptor(
                                                     component_name="flwr CLI")])


def flower_call(what: str, call):
    """Run a Control API call; Flower's own refusal or an unreachable SuperLink becomes one line."""
    import httpx
    from flwr.supercore.error.base import FlowerError

    try:
        return call()
    except httpx.HTTPStatusError as err:
        flower = FlowerError.from_json(err.response.text)
        detail = flower.message if flower else f"HTTP {err.response.status_code}"
        raise PolicyError(f"the SuperLink refused to {what}: {detail}") from None
    except httpx.HTTPError as err:
        raise PolicyError(f"cannot reach the SuperLink to {what} ({type(err).__name__}: {err}); is `fedgov server "
                          "start` running, and is --superlink its loopback address?") from None


def register(ledger: Ledger, registration: Registration, team: str, superlink: str, ca: Path,
             actor: str) -> int:
    """Register the node with Flower, then in the ledger; return its Flower node id."""
    from flwr.proto.control_pb2 import RegisterNodeRequest, UnregisterNodeRequest

    key = auth_key(registration)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pem = key.public_bytes(serialization.Encoding.PEM, spki)  # what Flower's RegisterNode takes
    der = key.public_bytes(serialization.Encoding.DER, spki)  # what the ledger records the hash of
    known = load_registry(ledger).get(registration.node_id)
    if known is not None:
        raise UsageError(f"node {registration.node_id} is already registered in this ledger (team {known.team}); a "
                         "node id is registered once")
    with control_client(superlink, ca) as client:
        response = flower_call("register the node", lambda: client.RegisterNode(
            RegisterNodeRequest(public_key=pem, name=registration.node_id)))
        flower_id = int(response.node_id)
        if not flower_id:
            raise PolicyError("the SuperLink registered no node id")
        try:
            register_nodes(ledger, [(registration.node_id, registration.signing_key, team)], actor=actor,
                           details={registration.node_id: {
                               "flower_node_id": str(flower_id),
                               "auth_key_sha256": hashlib.sha256(der).hexdigest()}})
        except BaseException:
            flower_call("undo the registration", lambda: client.UnregisterNode(
                UnregisterNodeRequest(node_id=flower_id)))
            raise
    return flower_id

