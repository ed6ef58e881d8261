"""`fedgov certs`: a private CA, a coordinator certificate that TLS clients accept, node auth keys Flower reads."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store

from tests.fedgov_command import run_fedgov


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    for args in (["ca", "--out", "ca"], ["coordinator", "--ca", "ca", "--out", "coord", "--host", "coord.example.org",
                                         "--host", "10.1.2.3"], ["node", "radiology", "--out", "nodes"]):
        result = run_fedgov("certs", *args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    return tmp_path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_keys_are_written_0600_and_the_ca_key_stays_apart(certs: Path):
    assert {_mode(certs / f) for f in ("ca/ca.key", "coord/coordinator.key", "nodes/radiology.auth")} == {0o600}
    assert sorted(p.name for p in (certs / "coord").iterdir()) == ["ca.crt", "coordinator.crt", "coordinator.key"]


@pytest.mark.parametrize("name", ["localhost", "coord.example.org"])
def test_the_coordinator_certificate_verifies_for_each_of_its_names(certs: Path, name: str):
    ca = x509.load_pem_x509_certificate((certs / "ca/ca.crt").read_bytes())
    leaf = x509.load_pem_x509_certificate((certs / "coord/coordinator.crt").read_bytes())
    verifier = PolicyBuilder().store(Store([ca])).build_server_verifier(x509.DNSName(name))
    chain = verifier.verify(leaf, [])
    assert chain[-1] == ca


def test_the_coordinator_certificate_covers_loopback_and_the_given_addresses(certs: Path):
    leaf = x509.load_pem_x509_certificate((certs / "coord/coordinator.crt").read_bytes())
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1", "10.1.2.3"]
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "coord.example.org"]


def test_a_tls_client_trusting_only_the_ca_completes_a_handshake(certs: Path):
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs / "coord/coordinator.crt", certs / "coord/coordinator.key")
    client_ctx = ssl.create_default_context(cafile=str(certs / "coord/ca.crt"))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with socket.create_connection(("127.0.0.1", port)) as raw, \
                client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.recv(2) == b"ok"
        thread.join(5)


def test_a_node_auth_key_is_an_openssh_p384_pair(certs: Path):
    private = serialization.load_ssh_private_key((certs / "nodes/radiology.auth").read_bytes(), password=None)
    public = serialization.load_ssh_public_key((certs / "nodes/radiology.auth.pub").read_bytes())
    assert isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp384r1"
    assert (certs / "nodes/radiology.auth.pub").read_text().startswith("ecdsa-sha2-nistp384 ")
    assert private.public_key() == public


def test_existing_key_material_is_never_overwritten(certs: Path):
    before = (certs / "nodes/radiology.auth").read_bytes()
    result = run_fedgov("certs", "node", "radiology", "--out", "nodes", cwd=certs)
    assert result.returncode == 2
    assert result.stderr == ("error: nodes/radiology.auth already exists; fedgov never overwrites key "
                             "material: move it away or choose another --out\n")
    assert (certs / "nodes/radiology.auth").read_bytes() == before


@pytest.mark.parametrize("args,line", [
    (["coordinator", "--ca", "missing", "--out", "c"],
     "error: cannot read the CA in missing (No such file or directory: missing/ca.key); make it with "
     "`fedgov certs ca --out DIR`"),
    (["coordinator", "--ca", "ca", "--out", "c", "--host", "bad host"],
     "error: --host 'bad host' is neither an IP address nor a DNS name (letters, digits, hyphens and dots; IDNs "
     "in their xn-- form)"),
    (["ca", "--out", "c2", "--days", "0"], "error: --days must be between 1 and 3650, got 0"),
    (["node", "../escape", "--out", "n"],
     "error: node name '../escape' must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit "
     "(it names the key files)"),
])
def test_bad_input_is_one_line_and_writes_nothing(certs: Path, args: list[str], line: str):
    before = sorted(p.relative_to(certs) for p in certs.rglob("*"))
    result = run_fedgov("certs", *args, cwd=certs)
    assert (result.returncode, result.stderr) == (2, line + "\n")
    assert sorted(p.relative_to(certs) for p in certs.rglob("*")) == before


def test_a_coordinator_key_pasted_as_the_ca_is_refused(certs: Path, tmp_path: Path):
    fake = tmp_path / "fake-ca"
    fake.mkdir()
    (fake / "ca.crt").write_bytes((certs / "coord/coordinator.crt").read_bytes())
    (fake / "ca.key").write_bytes((certs / "coord/coordinator.key").read_bytes())
    result = run_fedgov("certs", "coordinator", "--ca", str(fake), "--out", str(tmp_path / "out"))
    assert (result.returncode, result.stderr) == (2, "error: the CA certificate is not a CA (basicConstraints "
                                                     "CA:FALSE)\n")
