"""TEST-ONLY: real TLS conversations between two in-memory OpenSSL endpoints (Python ``ssl``).

No sockets: a client and a server ``SSLObject`` exchange bytes through ``MemoryBIO`` pairs, and
every hand-over becomes a ``Chunk`` (one "frame" each), so the TLS layer sees exactly what a
capture would. OpenSSL writes the NSS key log itself (``SSLContext.keylog_filename``). This
checks our decryption against an independent implementation for suites the samples lack.

Run as a script (``python mt_tls_lab.py OUT.json CIPHERS``) it does one conversation and writes
it as JSON; the tests do that in a subprocess with ``OPENSSL_CONF`` set, which is the only way
to choose the TLS 1.3 cipher suite from Python.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import json
import ssl
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mailtrace.model import Chunk, Direction

HOSTNAME = "mail.lab.example"
SSL_OP_NO_ENCRYPT_THEN_MAC = 1 << 19
"""OpenSSL's option bit; Python has no name for it but passes the bits through."""
SSL_OP_ALLOW_CLIENT_RENEGOTIATION = 1 << 8
"""OpenSSL 3 refuses client-initiated renegotiation without this option bit."""


def make_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed RSA certificate for HOSTNAME (RSA, so RSA and ECDHE-RSA suites both work)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, HOSTNAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mailtrace tests"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        ]
    )
    start = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x0102)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(HOSTNAME), x509.DNSName("imap.lab.example")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@dataclass
class Conversation:
    """What went over the wire, what the endpoints said, and the key log OpenSSL wrote."""

    items: list[Chunk] = field(default_factory=list)
    keylog: str = ""
    version: str = ""
    cipher: str = ""
    session: ssl.SSLSession | None = None
    resumed: bool = False
    contexts: tuple[ssl.SSLContext, ssl.SSLContext] | None = None


CLIENT_LINES = [b"EHLO client.lab.example\r\n", b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", b"QUIT\r\n"]
SERVER_LINES = [b"250-mail.lab.example\r\n250 STARTTLS\r\n", b"235 2.7.0 ok\r\n", b"221 2.0.0 Bye\r\n"]


def converse(
    folder: Path,
    *,
    ciphers: str | None = None,
    version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    no_etm: bool = False,
    resume: Conversation | None = None,
    big: int = 0,
    key_update: bool = False,
    server_curve: str | None = None,
    renegotiate: bool = False,
) -> Conversation:
    """One TLS conversation: handshake, CLIENT_LINES/SERVER_LINES alternating, close_notify.

    ``big`` adds a server message of that many bytes (several full-size records). ``resume``
    reuses that conversation's contexts and offers its session (ticket) for resumption.
    ``key_update`` makes the client send a TLS 1.3 KeyUpdate (update_requested) after AUTH.
    ``server_curve`` limits the server's groups; in TLS 1.3 that forces a HelloRetryRequest.
    ``renegotiate`` makes the TLS 1.2 client renegotiate after AUTH.
    """
    keylog = folder / "keys.log"
    if resume is not None and resume.contexts is not None:
        conv = _talk(*resume.contexts, keylog, big, resume.session, key_update, renegotiate)
        conv.contexts = resume.contexts
        return conv
    cert, key = (folder / "cert.pem", folder / "key.pem")
    if not cert.exists():
        cert, key = make_cert(folder)
    keylog.unlink(missing_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 are deprecated, on purpose
        cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        for ctx in (cctx, sctx):
            ctx.minimum_version = ctx.maximum_version = version
            if ciphers:
                ctx.set_ciphers(ciphers)
            if no_etm:
                ctx.options |= SSL_OP_NO_ENCRYPT_THEN_MAC
            if renegotiate:
                ctx.options |= SSL_OP_ALLOW_CLIENT_RENEGOTIATION
    cctx.check_hostname = False
    cctx.verify_mode = ssl.CERT_NONE
    cctx.keylog_filename = str(keylog)
    sctx.load_cert_chain(cert, key)
    if server_curve:
        sctx.set_ecdh_curve(server_curve)
    conv = _talk(cctx, sctx, keylog, big, None, key_update, renegotiate)
    conv.contexts = (cctx, sctx)
    return conv


def _ssl_pointer(obj: ssl.SSLObject, versions: tuple[int, ...]) -> tuple[ctypes.CDLL, int]:
    try:
        libssl = ctypes.CDLL("libssl.so.3")
    except OSError as exc:
        raise RuntimeError(f"libssl.so.3 not loadable: {exc}") from exc
    libssl.SSL_version.argtypes = [ctypes.c_void_p]
    if sys.version_info[:2] != (3, 11):
        raise RuntimeError("PySSLSocket layout only checked on CPython 3.11")
    ptr = ctypes.c_void_p.from_address(id(obj._sslobj) + 2 * ctypes.sizeof(ctypes.c_void_p) + 8).value
    if not ptr or libssl.SSL_version(ptr) not in versions:
        raise RuntimeError("could not find the SSL pointer of the SSLObject")
    return libssl, ptr


def request_renegotiation(obj: ssl.SSLObject) -> None:
    """Call OpenSSL's SSL_renegotiate on a TLS 1.2 SSLObject (see request_key_update)."""
    libssl, ptr = _ssl_pointer(obj, (0x0303,))
    libssl.SSL_renegotiate.argtypes = [ctypes.c_void_p]
    if libssl.SSL_renegotiate(ptr) != 1:
        raise RuntimeError("SSL_renegotiate failed")


def request_key_update(obj: ssl.SSLObject) -> None:
    """Call OpenSSL's SSL_key_update on an SSLObject, which Python does not expose.

    Reads the ``SSL *`` out of CPython 3.11's PySSLSocket (after the object header and the
    socket reference) and checks it with SSL_version before use; raises RuntimeError when the
    layout or library is not what this expects, so the caller can skip.
    """
    libssl, ptr = _ssl_pointer(obj, (0x0304,))
    libssl.SSL_key_update.argtypes = [ctypes.c_void_p, ctypes.c_int]
    if libssl.SSL_key_update(ptr, 1) != 1:  # SSL_KEY_UPDATE_REQUESTED
        raise RuntimeError("SSL_key_update failed")


def _talk(
    cctx: ssl.SSLContext,
    sctx: ssl.SSLContext,
    keylog: Path,
    big: int,
    session: ssl.SSLSession | None,
    key_update: bool,
    renegotiate: bool = False,
) -> Conversation:
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = cctx.wrap_bio(c_in, c_out, server_hostname=HOSTNAME, session=session)
    server = sctx.wrap_bio(s_in, s_out, server_side=True)
    conv = Conversation()

    def pump() -> None:
        for src, dst, direction in ((c_out, s_in, Direction.CLIENT), (s_out, c_in, Direction.SERVER)):
            data = src.read()
            if data:
                frame = len(conv.items) + 1
                conv.items.append(Chunk(direction, data, 1000.0 + frame / 1000, frame))
                dst.write(data)

    done = {"c": False, "s": False}
    for _ in range(20):
        for who, obj in (("c", client), ("s", server)):
            if not done[who]:
                try:
                    obj.do_handshake()
                    done[who] = True
                except ssl.SSLWantReadError:
                    pass
        pump()
        if all(done.values()):
            break

    def read_all(obj: ssl.SSLObject) -> bytes:
        out = b""
        while True:
            try:
                chunk = obj.read(65536)
            except ssl.SSLWantReadError:
                return out
            if not chunk:
                return out
            out += chunk

    for c_line, s_line in zip(CLIENT_LINES, SERVER_LINES, strict=True):
        client.write(c_line)
        pump()
        assert read_all(server) == c_line
        server.write(s_line)
        pump()
        assert read_all(client) == s_line
        if key_update and c_line.startswith(b"AUTH"):
            request_key_update(client)
        if renegotiate and c_line.startswith(b"AUTH"):
            request_renegotiation(client)
            for _ in range(10):
                for obj in (client, server):
                    with contextlib.suppress(ssl.SSLWantReadError):
                        obj.do_handshake()
                    read_all(obj)
                pump()
        if big and c_line.startswith(b"AUTH"):
            blob = bytes(range(256)) * (big // 256 + 1)
            server.write(blob[:big])
            pump()
            assert read_all(client) == blob[:big]
    for obj in (client, server):
        with contextlib.suppress(ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            obj.unwrap()
        pump()
    conv.keylog = keylog.read_text()
    conv.version = client.version() or ""
    conv.cipher = (client.cipher() or ("",))[0]
    conv.session = client.session
    conv.resumed = client.session_reused
    return conv


def main(argv: list[str]) -> None:
    """Script mode: one TLS 1.3 conversation under the suite OPENSSL_CONF selects, as JSON."""
    out, folder = Path(argv[1]), Path(argv[2])
    conv = converse(folder, version=ssl.TLSVersion.TLSv1_3, big=int(argv[3]) if len(argv) > 3 else 0)
    items = [{"d": c.direction.value, "data": c.data.hex(), "ts": c.ts, "frame": c.frame} for c in conv.items]
    out.write_text(json.dumps({"items": items, "keylog": conv.keylog, "cipher": conv.cipher}))


if __name__ == "__main__":
    main(sys.argv)
