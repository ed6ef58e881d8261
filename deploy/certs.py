"""The federation's TLS material, made with `cryptography`: a private CA, the coordinator's
certificate, and each node's SuperNode authentication key pair.

- CA: ECDSA P-384, self-signed, `CA:TRUE, pathlen:0`, for certificate and CRL signing only.
  Its key can live apart from the coordinator's files: only issuing needs it.
- Coordinator: ECDSA P-384, issued by the CA, for TLS server authentication. Its names always
  include `localhost`, `127.0.0.1` and `::1` (Flower's SuperExec reaches the SuperLink on
  loopback and checks the certificate too), plus every `--host` given.
- Node authentication key: ECDSA P-384 in OpenSSH format, the form `flower-supernode
  --auth-supernode-private-key` reads and `flwr supernode register` takes (its `.pub`).

Every function here returns bytes; the CLI writes them (private keys 0600, never overwritten).
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from governance.errors import UsageError

CURVE = ec.SECP384R1()
LOOPBACK = ("localhost", "127.0.0.1", "::1")
MAX_DAYS = 3650
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


@dataclass(frozen=True)
class Issued:
    """A private key (PEM, PKCS8) and its certificate (PEM)."""

    key_pem: bytes
    cert_pem: bytes


def check_days(days: int) -> int:
    if not 1 <= days <= MAX_DAYS:
        raise UsageError(f"--days must be between 1 and {MAX_DAYS}, got {days}")
    return days


def subject_names(hosts: list[str]) -> list[x509.GeneralName]:
    """Loopback plus `hosts`, each an IP address or a DNS name; one clear line for anything else."""
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for host in [*LOOPBACK, *hosts]:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None:
            general: x509.GeneralName = x509.IPAddress(ip)
            key = str(ip)
        else:
            labels = host.rstrip(".").split(".")
            if not host.isascii() or len(host) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
                raise UsageError(f"--host {host[:80]!r} is neither an IP address nor a DNS name (letters, digits, "
                                 "hyphens and dots; IDNs in their xn-- form)")
            general, key = x509.DNSName(host.rstrip(".").lower()), host.rstrip(".").lower()
        if key not in seen:
            seen.add(key)
            names.append(general)
    return names


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedgov federation"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder: x509.CertificateBuilder, days: int) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(
        now + datetime.timedelta(days=check_days(days)))


def make_ca(common_name: str = "fedgov federation CA", days: int = MAX_DAYS) -> Issued:
    """A new private CA: the only root the coordinator's clients and the nodes trust."""
    key = ec.generate_private_key(CURVE)
    name = _name(common_name)
    public = key.public_key()
    cert = (_validity(x509.CertificateBuilder(), days)
            .subject_name(name).issuer_name(name).public_key(public)
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA384()))
    return Issued(_private_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def load_ca(ca: Issued) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The CA's key and certificate, checked to belong together; UsageError otherwise."""
    try:
        key = serialization.load_pem_private_key(ca.key_pem, password=None)
        cert = x509.load_pem_x509_certificate(ca.cert_pem)
    except (ValueError, TypeError) as err:
        raise UsageError(f"the CA key or certificate cannot be read ({err}); make them with `fedgov certs ca`") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise UsageError("the CA key does not belong to the CA certificate")
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    if not constraints.ca:
        raise UsageError("the CA certificate is not a CA (basicConstraints CA:FALSE)")
    return key, cert


def issue_coordinator(ca: Issued, hosts: list[str], days: int = 825) -> Issued:
    """The coordinator's TLS server certificate, issued by `ca`, for loopback and `hosts`."""
    names = subject_names(hosts)
    ca_key, ca_cert = load_ca(ca)
    key = ec.generate_private_key(CURVE)
    public = key.public_key()
    cert = (_validity(x509.CertificateBuilder(), days)
            .subject_name(_name("fedgov coordinator")).issuer_name(ca_cert.subject).public_key(public)
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA384()))
    return Issued(_private_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def node_auth_keys() -> tuple[bytes, bytes]:
    """A SuperNode authentication key pair: (OpenSSH private key, OpenSSH public key line)."""
    key = ec.generate_private_key(CURVE)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public + b"\n"


@dataclass(frozen=True)
class CoordinatorFiles:
    """The coordinator's TLS files, as `fedgov certs coordinator --out DIR` wrote them."""

    ca: Path
    cert: Path
    key: Path


def check_coordinator_files(directory: Path) -> CoordinatorFiles:
    """`DIR/ca.crt`, `coordinator.crt`, `coordinator.key`, checked before anything is started.

    Each must be readable; the key private to its owner (like ssh, fedgov refuses a key
    others may read) and the certificate's; the certificate issued by `ca.crt`, valid now,
    and naming 127.0.0.1 (the SuperExec and the Fleet proxy reach the SuperLink there).
    One UsageError line for the first thing wrong.
    """
    files = CoordinatorFiles(directory / "ca.crt", directory / "coordinator.crt", directory / "coordinator.key")
    made_by = "make them with `fedgov certs coordinator --ca CA_DIR --out DIR`"
    data = {}
    for path in (files.ca, files.cert, files.key):
        try:
            data[path] = path.read_bytes()
        except OSError as err:
            raise UsageError(f"cannot read {path} ({err.strerror}); --certs names the directory of the "
                             f"coordinator's TLS files: {made_by}") from None
    mode = files.key.stat().st_mode & 0o777
    if mode & 0o077:
        raise UsageError(f"{files.key} can be read by other users (mode {mode:04o}); make it private: "
                         f"chmod 600 {files.key}")
    try:
        ca = x509.load_pem_x509_certificate(data[files.ca])
        cert = x509.load_pem_x509_certificate(data[files.cert])
    except ValueError:
        raise UsageError(f"{files.ca} or {files.cert} is not a PEM certificate; {made_by}") from None
    try:
        key = serialization.load_pem_private_key(data[files.key], password=None)
    except (ValueError, TypeError):
        raise UsageError(f"{files.key} is not an unencrypted PEM private key; {made_by}") from None
    if key.public_key() != cert.public_key():
        raise UsageError(f"{files.key} does not belong to {files.cert}; use the pair `fedgov certs coordinator` "
                         "wrote together")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise UsageError(f"{files.cert} was not issued by {files.ca}; nodes trust that CA only") from None
    now = datetime.datetime.now(datetime.timezone.utc)
    for path, checked, remedy in ((files.cert, cert, "issue a new one with `fedgov certs coordinator`"),
                                  (files.ca, ca, "make a new CA with `fedgov certs ca`, then new certificates")):
        if not checked.not_valid_before_utc <= now <= checked.not_valid_after_utc:
            raise UsageError(f"{path} is valid from {checked.not_valid_before_utc:%Y-%m-%d} to "
                             f"{checked.not_valid_after_utc:%Y-%m-%d}, not now; {remedy}")
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = None
    if names is None or ipaddress.ip_address("127.0.0.1") not in names.get_values_for_type(x509.IPAddress):
        raise UsageError(f"{files.cert} does not name 127.0.0.1, where Flower's SuperExec and the Fleet proxy reach "
                         f"the SuperLink; {made_by}")
    return files
