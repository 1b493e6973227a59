"""TLS on a real ``nodeauthz serve``: rotated files are served to new connections without a restart, and
only client certificates usable for client auth are accepted. Real certificates, made by the test.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from tests.pki import CA, CLIENT_AUTH, SERVER_AUTH
from tests.servers import free_port, nodeauthz_script, stop

ROTATION_WAIT_S = 20  # the files are looked at every 5 s
GET = b"GET /healthz HTTP/1.1\r\nHost: nodeauthz\r\n\r\n"


@dataclass
class Tls:
    dir: Path
    server_ca: CA
    client_ca: CA
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def path(self, name: str) -> Path:
        return self.dir / name

    def client_context(self, client: str) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.path("server-ca.crt")))
        ctx.load_cert_chain(self.path(f"{client}.crt"), self.path(f"{client}.key"))
        return ctx

    def connect(self, client: str) -> ssl.SSLSocket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        return self.client_context(client).wrap_socket(sock, server_hostname="127.0.0.1")

    def served_by(self, client: str) -> tuple[str, bytes]:
        """(the server certificate's CN, the status line) on a new connection."""
        with self.connect(client) as conn:
            status = exchange(conn)
            der = conn.getpeercert(binary_form=True)
            assert der is not None
            return _cn(x509.load_der_x509_certificate(der)), status


def exchange(conn: ssl.SSLSocket) -> bytes:
    """GET /healthz on an open connection; the whole response read (headers and body may be two records)."""
    conn.sendall(GET)
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
        chunk = conn.recv(4096)
        if not chunk:  # TLS 1.3: a refused client certificate shows as the server closing
            raise ConnectionAbortedError(f"closed by the server after {data!r}")
        data += chunk
    return data.split(b"\r\n")[0]


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value)


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[Tls]:
    server_ca, client_ca = CA.create("server-ca"), CA.create("client-ca")
    server_ca.write(tmp_path / "server-ca.crt")
    client_ca.write(tmp_path / "client-ca.crt")
    server_ca.issue(
        "webhook-1", tmp_path / "tls.crt", tmp_path / "tls.key", usages=(SERVER_AUTH,), ip="127.0.0.1"
    )
    client_ca.issue(
        "kube-apiserver", tmp_path / "apiserver.crt", tmp_path / "apiserver.key", usages=(CLIENT_AUTH,)
    )
    url = f"sqlite:///{tmp_path}/graph.db"
    subprocess.run([nodeauthz_script(), "--database-url", url, "migrate"], check=True, capture_output=True)
    port, log = free_port(), tmp_path / "serve.log"
    proc = subprocess.Popen(
        [nodeauthz_script(), "--database-url", url, "serve", "--port", str(port), "--require-synced", "none",
         "--tls-cert", str(tmp_path / "tls.crt"), "--tls-key", str(tmp_path / "tls.key"),
         "--tls-client-ca", str(tmp_path / "client-ca.crt")],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    t = Tls(tmp_path, server_ca, client_ca, port, proc, log)
    deadline = time.monotonic() + 20
    while True:
        try:
            t.served_by("apiserver")
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.1)
    try:
        yield t
    finally:
        stop(proc)


def eventually_served_by(tls: Tls, client: str, cn: str) -> None:
    deadline = time.monotonic() + ROTATION_WAIT_S
    while (seen := tls.served_by(client))[0] != cn:
        assert time.monotonic() < deadline, f"still served by {seen[0]}: {tls.log.read_text()}"
        time.sleep(0.5)
    assert seen[1] == b"HTTP/1.1 200 OK"


def test_a_rotated_certificate_is_served_to_new_connections_without_a_restart(tls: Tls) -> None:
    assert tls.served_by("apiserver") == ("webhook-1", b"HTTP/1.1 200 OK")
    open_conn = tls.connect("apiserver")  # a keep-alive connection from before the rotation
    try:
        assert exchange(open_conn) == b"HTTP/1.1 200 OK"
        # cert-manager renews: a new key and certificate replace the files in place.
        tls.server_ca.issue(
            "webhook-2", tls.path("tls.crt"), tls.path("tls.key"), usages=(SERVER_AUTH,), ip="127.0.0.1"
        )
        eventually_served_by(tls, "apiserver", "webhook-2")
        assert exchange(open_conn) == b"HTTP/1.1 200 OK"  # the connection opened before keeps its session
    finally:
        open_conn.close()
    assert tls.proc.poll() is None  # the same process throughout
    assert "TLS certificate, key and client CA reloaded" in tls.log.read_text()


def test_a_rotated_client_ca_trusts_the_new_ca_and_no_longer_the_old_one(tls: Tls) -> None:
    new_ca = CA.create("client-ca-2")
    new_ca.issue(
        "kube-apiserver", tls.path("apiserver-2.crt"), tls.path("apiserver-2.key"), usages=(CLIENT_AUTH,)
    )
    with pytest.raises(OSError):
        tls.served_by("apiserver-2")
    new_ca.write(tls.path("client-ca.crt.tmp")).replace(tls.path("client-ca.crt"))
    deadline = time.monotonic() + ROTATION_WAIT_S
    while True:
        try:
            assert tls.served_by("apiserver-2") == ("webhook-1", b"HTTP/1.1 200 OK")
            break
        except OSError:
            assert time.monotonic() < deadline, tls.log.read_text()
            time.sleep(0.5)
    with pytest.raises(OSError):  # the old CA's client certificate is refused now
        tls.served_by("apiserver")


def test_files_that_cannot_be_loaded_keep_the_previous_certificate(tls: Tls) -> None:
    tls.path("tls.crt").write_text("-----BEGIN CERTIFICATE-----\nhalf a file")
    deadline = time.monotonic() + ROTATION_WAIT_S
    while "cannot be loaded" not in tls.log.read_text():
        assert time.monotonic() < deadline, tls.log.read_text()
        time.sleep(0.5)
    assert tls.served_by("apiserver") == ("webhook-1", b"HTTP/1.1 200 OK")
    tls.server_ca.issue(
        "webhook-2", tls.path("tls.crt"), tls.path("tls.key"), usages=(SERVER_AUTH,), ip="127.0.0.1"
    )
    eventually_served_by(tls, "apiserver", "webhook-2")


@pytest.mark.parametrize("max_version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_a_client_certificate_without_client_auth_usage_is_refused(
    tls: Tls, max_version: ssl.TLSVersion
) -> None:
    """A serverAuth-only certificate from the trusted CA (e.g. another webhook's serving certificate)
    is refused at the handshake; one without the extension is valid for any use (as in Go's x509)."""
    tls.client_ca.issue(
        "server-only", tls.path("server-only.crt"), tls.path("server-only.key"), usages=(SERVER_AUTH,)
    )
    tls.client_ca.issue("any-use", tls.path("any-use.crt"), tls.path("any-use.key"), usages=None)
    ctx = tls.client_context("server-only")
    ctx.maximum_version = max_version
    with socket.create_connection(("127.0.0.1", tls.port), timeout=5) as sock:
        # TLS 1.2: the handshake fails; TLS 1.3: the server closes before answering.
        with pytest.raises(OSError), ctx.wrap_socket(sock, server_hostname="127.0.0.1") as conn:
            exchange(conn)
    assert tls.served_by("any-use") == ("webhook-1", b"HTTP/1.1 200 OK")
    assert tls.served_by("apiserver") == ("webhook-1", b"HTTP/1.1 200 OK")


def test_tls_files_that_cannot_serve_are_one_line_and_exit_2(tmp_path: Path) -> None:
    ca = CA.create()
    ca.issue("a", tmp_path / "a.crt", tmp_path / "a.key", usages=(SERVER_AUTH,))
    ca.issue("b", tmp_path / "b.crt", tmp_path / "b.key", usages=(SERVER_AUTH,))
    url = f"sqlite:///{tmp_path}/graph.db"
    cases = [
        (["--tls-cert", str(tmp_path / "missing.crt"), "--tls-key", str(tmp_path / "a.key")],
         f"nodeauthz: error: --tls-cert {tmp_path}/missing.crt: No such file or directory"),
        (["--tls-cert", str(tmp_path / "a.crt"), "--tls-key", str(tmp_path / "b.key")],
         f"nodeauthz: error: cannot load --tls-cert {tmp_path}/a.crt, --tls-key {tmp_path}/b.key: KEY_VALUES_MISMATCH"),
    ]  # fmt: skip
    for flags, line in cases:
        out = subprocess.run(
            [nodeauthz_script(), "--database-url", url, "serve", *flags],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert out.returncode == 2 and out.stderr == line + "\n", out.stderr
