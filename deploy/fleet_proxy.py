"""The coordinator's only public port: a TLS front that forwards Flower's Fleet API and nothing else.

Flower 1.42's SuperLink serves the Fleet API (what SuperNodes call), the Control API (start a
run, register a node: no credentials in open-source Flower) and the Runtime API (what the
ServerApp and SuperExec call) on one HTTP port, and no flag splits them. So `fedgov server
start` binds the SuperLink to loopback and puts this proxy on the address nodes reach. It:

- speaks TLS only (the coordinator's certificate); a plain-HTTP client gets no answer;
- forwards only `POST /v1/fleet/<name>` (lowercase letters and hyphens, no query, no dots,
  no escapes: nothing that a server could normalise into another route), and answers 404 to
  every other path and method (Control, Runtime, `/health`, `/docs`, `/openapi.json`);
- requires one `Content-Length` of at most `max_body` bytes, and refuses
  `Transfer-Encoding` (no chunked bodies, so no request smuggling between the two parsers);
- forwards only the headers a SuperNode sends (`FORWARDED_REQUEST_HEADERS`: content type,
  Flower's version metadata, the node authentication headers), each at most once, and
  answers with only the status, `Content-Type`, Flower's version-incompatibility header and
  the body;
- re-encrypts to the SuperLink on loopback and verifies its certificate against the
  federation's CA. (`--enable-supernode-auth` refuses an insecure SuperLink, and TLS
  passthrough could not filter paths.)
- bounds time and load: `CLIENT_TIMEOUT` seconds per socket operation with a node (the TLS
  handshake included, done in the connection's own thread, so a slow client never blocks
  the others), `UPSTREAM_TIMEOUT` for the SuperLink's answer, `max_connections` at once.

An unreachable SuperLink is answered 502 and a late one 504: a SuperNode retries both, so a
coordinator restart looks to nodes like a short outage. Node authentication itself stays
with the SuperLink, which checks the signed headers this proxy passes through.

One answer is made clearer on its way back: Flower refuses a key it never registered and a
registered node it still counts online with the same `412 [code: 2004] Failed to activate
SuperNode.`, so the proxy asks the SuperLink (its Control API, through `key_registered`)
whether the refused key is registered, and if not adds `NOT_REGISTERED` as the error's public
details, which the SuperNode prints and `fedgov node join` acts on. The SuperLink checks the
request's signature against that key before it refuses the activation, so only whoever holds
the key's private half learns this.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import re
import socket
import socketserver
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

FLEET_PATH = re.compile(r"/v1/fleet/[a-z][a-z-]{0,63}")
# What flwr/supernode/fleet_http_client.py and its interceptors send (Flower 1.42):
# ProtobufClient's media types, RuntimeVersionHttpInterceptor's metadata, NodeAuthHttpInterceptor's signature.
FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "flwr-package-name", "flwr-package-version",
                             "flwr-component-name", "flwr-public-key", "flwr-timestamp", "flwr-signature")
FORWARDED_RESPONSE_HEADERS = ("content-type", "flwr-version-incompatibility-message")
MAX_BODY = 32 * 1024 * 1024  # Flower sends arrays in chunks of 5 MiB (FLWR_PRIVATE_MAX_ARRAY_CHUNK_SIZE)
MAX_CONNECTIONS = 256
CLIENT_TIMEOUT = 30.0
UPSTREAM_TIMEOUT = 60.0
UPSTREAM_IDLE = 2.0  # reuse a loopback connection only this soon after its last use (uvicorn closes idle ones after 5 s)
ACTIVATE_PATH = "/v1/fleet/activate-node"
ACTIVATION_FAILED = 2004  # Flower's FLEET_NODE_ACTIVATION_FAILED: an unknown key and a node still online alike
NOT_REGISTERED = ("fedgov: this node's key is not registered at the coordinator; ask its operator to run "
                  "`fedgov node register` with this node's registration.json")

KeyLookup = Callable[[bytes], "bool | None"]  # is this auth key (PEM) registered? None: could not tell


def explain_refused_activation(body: bytes, public_key_header: str | None, key_registered: KeyLookup) -> bytes:
    """The SuperLink's 412 answer to an activation, with `NOT_REGISTERED` added when the key is not registered.

    Anything else (another error, details already given, a key that is registered, a lookup
    that failed) is returned unchanged.
    """
    try:
        error = json.loads(body)
        key = base64.b64decode(public_key_header or "", validate=True)
    except (ValueError, binascii.Error):
        return body
    if not isinstance(error, dict) or error.get("code") != ACTIVATION_FAILED or "extra" in error or not key:
        return body
    if key_registered(key) is not False:
        return body
    return json.dumps({**error, "extra": NOT_REGISTERED}).encode()


@dataclass(frozen=True)
class Upstream:
    """The SuperLink on loopback, reached over TLS that trusts only the federation's CA."""

    host: str
    port: int
    context: ssl.SSLContext

    @classmethod
    def loopback(cls, port: int, ca_file: Path) -> Upstream:
        context = ssl.create_default_context(cafile=str(ca_file))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return cls("127.0.0.1", port, context)

    def connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, timeout=UPSTREAM_TIMEOUT, context=self.context)


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


class FleetProxy(ThreadingHTTPServer):
    """Bound and listening once made (a busy port fails here); `serve_forever` starts answering."""

    daemon_threads = True
    request_queue_size = 128  # the listen backlog; socketserver's default of 5 is for toys
    allow_reuse_address = True  # Linux: never lets two listeners share a port, only skips TIME_WAIT

    def __init__(self, listen: tuple[str, int], tls: ssl.SSLContext, upstream: Upstream,
                 max_body: int = MAX_BODY, max_connections: int = MAX_CONNECTIONS,
                 key_registered: KeyLookup | None = None) -> None:
        self.address_family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
        self.tls = tls
        self.upstream = upstream
        self.key_registered = key_registered
        self.max_body = max_body
        self._slots = threading.BoundedSemaphore(max_connections)
        self._serving: threading.Thread | None = None
        super().__init__(listen, _FleetHandler)

    def start(self) -> None:
        """Answer in a thread of its own (each connection then gets one more)."""
        self._serving = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.25},
                                         name="fleet-proxy", daemon=True)
        self._serving.start()

    @property
    def running(self) -> bool:
        return self._serving is not None and self._serving.is_alive()

    def stop(self) -> None:
        """Stop accepting and close the port; connections still open end with the SuperLink behind them."""
        if self._serving is not None:
            self.shutdown()
            self._serving.join()
            self._serving = None
        self.server_close()

    def server_bind(self) -> None:
        # not HTTPServer.server_bind: it looks the host's name up in DNS (getfqdn), which nothing here needs
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: socket.socket, client_address: object) -> None:
        if not self._slots.acquire(blocking=False):  # too many at once: this one is closed unanswered
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: object) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request: socket.socket, client_address: object) -> None:
        """In the connection's own thread: the TLS handshake, under the client time-out, then HTTP."""
        request.settimeout(CLIENT_TIMEOUT)
        try:
            tls = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):  # plain HTTP, a scanner, a client that does not trust us, a time-out
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except OSError:  # the node went away mid-request
            pass
        finally:
            tls.close()

    def handle_error(self, request: object, client_address: object) -> None:
        error = sys.exc_info()[1]
        print(f"fleet proxy: {type(error).__name__}: {error}", file=sys.stderr, flush=True)


class _FleetHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = CLIENT_TIMEOUT  # per socket operation, also while a kept-alive connection waits for its next request
    server: FleetProxy

    def setup(self) -> None:
        super().setup()
        self._upstream: http.client.HTTPSConnection | None = None
        self._last_used = 0.0

    def finish(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
        super().finish()

    def version_string(self) -> str:
        return "fedgov-fleet"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # SuperLink logs every request it is given; a probe answered 404 here is not worth a line

    def do_POST(self) -> None:
        if not FLEET_PATH.fullmatch(self.path):
            return self._refuse(404, "not found: this port serves the Fleet API only")
        if "transfer-encoding" in self.headers:
            return self._refuse(400, "Transfer-Encoding is not accepted; send Content-Length")
        lengths = self.headers.get_all("content-length") or []
        if not lengths:
            return self._refuse(411, "Content-Length is required")
        if len(lengths) > 1 or not (lengths[0].isascii() and lengths[0].isdigit()):
            return self._refuse(400, "one Content-Length, a whole number, is required")
        length = int(lengths[0])
        if length > self.server.max_body:
            return self._refuse(413, f"request body over {self.server.max_body} bytes")
        headers = {}
        for name in FORWARDED_REQUEST_HEADERS:
            values = self.headers.get_all(name) or []
            if len(values) > 1:
                return self._refuse(400, f"header {name} given more than once")
            if values:
                headers[name] = values[0]
        body = self.rfile.read(length)
        if len(body) != length:  # the node hung up half-way
            self.close_connection = True
            return None
        self._forward(body, headers)
        return None

    def _not_found(self) -> None:
        self._refuse(404, "not found: this port serves the Fleet API only")

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_found

    def _forward(self, body: bytes, headers: dict[str, str]) -> None:
        if self._upstream is not None and time.monotonic() - self._last_used > UPSTREAM_IDLE:
            self._upstream.close()
            self._upstream = None
        connection = self._upstream or self.server.upstream.connect()
        self._upstream = None
        try:
            connection.request("POST", self.path, body=body, headers={**headers, "Content-Length": str(len(body))})
            response = connection.getresponse()
            data = response.read(self.server.max_body + 1)
        except TimeoutError:
            connection.close()
            return self._refuse(504, "the SuperLink did not answer in time")
        except (OSError, http.client.HTTPException):
            connection.close()
            return self._refuse(502, "the SuperLink is not reachable")
        if len(data) > self.server.max_body or not response.isclosed():
            connection.close()
            return self._refuse(502, "the SuperLink's answer is too large")
        if response.will_close:
            connection.close()
        else:
            self._upstream, self._last_used = connection, time.monotonic()
        if self.path == ACTIVATE_PATH and response.status == 412 and self.server.key_registered is not None:
            data = explain_refused_activation(data, headers.get("flwr-public-key"), self.server.key_registered)
        self.send_response(response.status)
        for name in FORWARDED_RESPONSE_HEADERS:
            value = response.getheader(name)
            if value is not None:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return None

    def _refuse(self, status: int, reason: str) -> None:
        """Answer `status` and close the connection: a body this did not read may still be on the wire."""
        data = f"{reason}\n".encode()
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self._linger()

    def _linger(self, seconds: float = 2.0) -> None:
        """Close after the client has the answer: closing with its unread body in our buffer would
        send a TCP reset, which can destroy the answer before the client reads it. So: end our
        side (FIN), then read and drop what still comes, for at most `seconds` and `max_body` bytes."""
        try:
            self.connection.shutdown(socket.SHUT_WR)  # drops TLS without close_notify; reads below are raw
            deadline, dropped = time.monotonic() + seconds, 0
            while dropped <= self.server.max_body and (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                dropped += len(chunk)
        except OSError:
            pass
