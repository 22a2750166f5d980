"""Builds small synthetic mail captures with dpkt for the HTML report tests (hostile ones included)."""

from __future__ import annotations

import base64
import socket
from collections.abc import Sequence
from pathlib import Path

import dpkt

C, S = "c", "s"


def _frame(
    src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes
) -> bytes:
    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, win=65535, data=payload)
    ip = dpkt.ip.IP(
        src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=dpkt.ip.IP_PROTO_TCP, ttl=64, data=tcp
    )
    ip.len = len(ip)
    eth = dpkt.ethernet.Ethernet(
        src=b"\x02\x00\x00\x00\x00\x01",
        dst=b"\x02\x00\x00\x00\x00\x02",
        type=dpkt.ethernet.ETH_TYPE_IP,
        data=ip,
    )
    return bytes(eth)


def session_frames(
    exchanges: Sequence[tuple[str, bytes]],
    *,
    client: str = "10.0.0.1",
    server: str = "10.0.0.2",
    cport: int = 40000,
    sport: int = 25,
    t0: float = 1_700_000_000.0,
    step: float = 0.001,
) -> list[tuple[float, bytes]]:
    """A whole TCP connection: handshake, each (C|S, bytes) as segments of at most 1460 bytes, FIN close."""
    ack = dpkt.tcp.TH_ACK
    frames: list[tuple[float, bytes]] = []
    t = t0
    cseq, sseq = 1000, 5000

    def emit(direction: str, flags: int, payload: bytes = b"") -> None:
        nonlocal t, cseq, sseq
        if direction == C:
            frames.append((t, _frame(client, server, cport, sport, cseq, sseq, flags, payload)))
            cseq += len(payload) + (1 if flags & (dpkt.tcp.TH_SYN | dpkt.tcp.TH_FIN) else 0)
        else:
            frames.append((t, _frame(server, client, sport, cport, sseq, cseq, flags, payload)))
            sseq += len(payload) + (1 if flags & (dpkt.tcp.TH_SYN | dpkt.tcp.TH_FIN) else 0)
        t += step

    emit(C, dpkt.tcp.TH_SYN)
    emit(S, dpkt.tcp.TH_SYN | ack)
    emit(C, ack)
    for direction, data in exchanges:
        for i in range(0, len(data), 1460):
            emit(direction, dpkt.tcp.TH_PUSH | ack, data[i : i + 1460])
        emit(S if direction == C else C, ack)
    emit(C, dpkt.tcp.TH_FIN | ack)
    emit(S, dpkt.tcp.TH_FIN | ack)
    emit(C, ack)
    return frames


def write_pcap(path: Path, *sessions: list[tuple[float, bytes]]) -> Path:
    frames = sorted((f for s in sessions for f in s), key=lambda f: f[0])
    with path.open("wb") as fh:
        writer = dpkt.pcap.Writer(fh)
        for ts, buf in frames:
            writer.writepkt(buf, ts=ts)
    return path


PWNED = "window.__pwned"
ATTACHMENT_BYTES = b"MZ\x90\x00 not really a program, but bytes as captured\r\n" * 4
HOSTILE_NAME = '<img src=x onerror="window.__pwned=3">.txt'
SECRET = "s3cr3t</script><script>window.__pwned=9</script>"


def hostile_message(big_attachment: bytes | None = None) -> bytes:
    attachment = base64.encodebytes(ATTACHMENT_BYTES).decode()
    extra = ""
    if big_attachment is not None:
        extra = (
            "--BOUNDARY\r\n"
            'Content-Type: application/octet-stream; name="big.bin"\r\n'
            "Content-Transfer-Encoding: base64\r\n"
            'Content-Disposition: attachment; filename="big.bin"\r\n\r\n'
            + base64.encodebytes(big_attachment).decode().replace("\n", "\r\n")
        )
    text = (
        'From: "Evil \\" \' <b>bold</b>" <evil@attacker.example>\r\n'
        "To: victim@local.example\r\n"
        "Subject: <script>window.__pwned=1</script>\r\n"
        "X-Quotes: \"double\" 'single' </script><!-- <script>window.__pwned=2</script>\r\n"
        "X-Bidi: invoice\u202egpj.exe\r\n"
        "X-Url: javascript:window.__pwned=4\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=BOUNDARY\r\n"
        "\r\n"
        "--BOUNDARY\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n"
        '<a href="javascript:window.__pwned=5">click</a> <img src="http://192.0.2.1/x.png">\r\n'
        "--BOUNDARY\r\n"
        f'Content-Type: text/plain; name="{HOSTILE_NAME}"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="{HOSTILE_NAME}"\r\n\r\n'
        + attachment.replace("\n", "\r\n")
        + extra
        + "--BOUNDARY--\r\n"
    )
    # a header line with bytes that are not UTF-8
    return text.encode("utf-8").replace(b"X-Url:", b"X-Raw: caf\xe9 \xff\xfe\r\nX-Url:", 1)


def hostile_smtp(
    big_attachment: bytes | None = None, t0: float = 1_700_000_000.0
) -> list[tuple[float, bytes]]:
    plain = base64.b64encode(f"\0mallory\0{SECRET}".encode()).decode()
    return session_frames(
        [
            (S, b"220 mx.example ESMTP <script>window.__pwned=6</script>\r\n"),
            (C, b'EHLO "><svg onload=window.__pwned=7>\r\n'),
            (S, b"250-mx.example\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"),
            (C, f"AUTH PLAIN {plain}\r\n".encode()),
            (S, b"235 2.7.0 ok\r\n"),
            (C, b'MAIL FROM:<"a\'b\\"c"@attacker.example>\r\n'),
            (S, b"250 ok\r\n"),
            (C, b"RCPT TO:<victim@local.example>\r\n"),
            (S, b"250 ok\r\n"),
            (C, b"DATA\r\n"),
            (S, b"354 go ahead\r\n"),
            (C, hostile_message(big_attachment) + b".\r\n"),
            (S, b"250 2.0.0 queued as <b>X</b>\r\n"),
            (C, b"XHACK \xff\xfe\x00\x1b[31m <iframe src=javascript:window.__pwned=8>\r\n"),
            (S, b"500 5.5.1 what\r\n"),
            (C, b"QUIT\r\n"),
            (S, b"221 bye\r\n"),
        ],
        t0=t0,
    )


def hostile_imap(t0: float = 1_700_000_001.0) -> list[tuple[float, bytes]]:
    return session_frames(
        [
            (S, b"* OK [CAPABILITY IMAP4rev1] <img src=x onerror=window.__pwned=10> ready\r\n"),
            (C, b'a1 LOGIN "<b>mallory</b>" "pw</script>"\r\n'),
            (S, b"a1 OK logged in\r\n"),
            (C, b'a2 SELECT "<img src=x onerror=window.__pwned=11>"\r\n'),
            (S, b"a2 NO [NONEXISTENT] <script>window.__pwned=12</script>\r\n"),
            (C, b"a3 LOGOUT\r\n"),
            (S, b"* BYE\r\na3 OK bye\r\n"),
        ],
        sport=143,
        cport=40001,
        t0=t0,
    )


def simple_smtp(
    attachment: bytes, name: str = "report.pdf", t0: float = 1_700_000_100.0, cport: int = 40100
) -> list[tuple[float, bytes]]:
    body = base64.encodebytes(attachment).decode().replace("\n", "\r\n")
    message = (
        "From: a@example.org\r\nTo: b@example.org\r\nSubject: with attachment\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        f'--XX\r\nContent-Type: application/pdf; name="{name}"\r\nContent-Transfer-Encoding: base64\r\n'
        f'Content-Disposition: attachment; filename="{name}"\r\n\r\n{body}--XX--\r\n'
    ).encode()
    return session_frames(
        [
            (S, b"220 mx ESMTP\r\n"),
            (C, b"EHLO c\r\n"),
            (S, b"250 mx\r\n"),
            (C, b"MAIL FROM:<a@example.org>\r\n"),
            (S, b"250 ok\r\n"),
            (C, b"RCPT TO:<b@example.org>\r\n"),
            (S, b"250 ok\r\n"),
            (C, b"DATA\r\n"),
            (S, b"354 go\r\n"),
            (C, message + b".\r\n"),
            (S, b"250 queued\r\n"),
            (C, b"QUIT\r\n"),
            (S, b"221 bye\r\n"),
        ],
        t0=t0,
        cport=cport,
    )


def hostile_findings(t0: float = 1_700_000_002.0) -> list[tuple[float, bytes]]:
    """An SMTP session whose findings, statistics, explanations and message details all quote hostile text:
    a VRFY answered with markup (user-enumeration detail), a markup verb (command statistics, a 500
    explained), a markup sender (top senders), a private EHLO keyword, hostile Received and X- fields."""
    message = (
        b"Received: from <script>window.__pwned=20</script> (\"><svg onload=window.__pwned=21>"
        b" [10.0.0.1]) by mx.example with ESMTP id <b>Q1</b>; Tue, 14 Nov 2023 22:13:22 +0000\r\n"
        b"Received: from a.example by <img src=x onerror=window.__pwned=22>; Tue, 14 Nov 2023 22:14:22 +0000\r\n"
        b"From: <script>window.__pwned=23</script>@attacker.example\r\n"
        b"To: victim@local.example\r\n"
        b"X-Evil: <script>window.__pwned=24</script>\r\n"
        b"Subject: =?utf-8?q?=3Cscript=3Ewindow.__pwned=3D25=3C/script=3E?=\r\n"
        b"\r\n"
        b"hello\r\n"
    )
    return session_frames(
        [
            (S, b"220 mx.example ESMTP\r\n"),
            (C, b"EHLO client.example\r\n"),
            (S, b"250-mx.example\r\n250-X<script>window.__pwned=13</script>\r\n250-VRFY\r\n250 8BITMIME\r\n"),
            (C, b"VRFY <script>window.__pwned=14</script>\r\n"),
            (S, b"250 2.1.5 <script>window.__pwned=15</script>@mx.example\r\n"),
            (C, b"<script>window.__pwned=16</script>\r\n"),
            (S, b"500 5.5.1 <script>window.__pwned=17</script>\r\n"),
            (C, b'MAIL FROM:<"<script>window.__pwned=18</script>"@attacker.example>\r\n'),
            (S, b"250 ok\r\n"),
            (C, b"RCPT TO:<victim@local.example>\r\n"),
            (S, b"250 ok\r\n"),
            (C, b"DATA\r\n"),
            (S, b"354 go ahead\r\n"),
            (C, message + b".\r\n"),
            (S, b"250 2.0.0 queued\r\n"),
            (C, b"QUIT\r\n"),
            (S, b"221 bye\r\n"),
        ],
        cport=40002,
        t0=t0,
    )
