"""Synthetic mail captures for the view tests: a conversation script → a pcap file (dpkt).

A script is a list of steps, each one TCP segment (plus the peer's ACK when ``acks`` is on):
``("C", b"EHLO a\\r\\n")`` client data, ``("S", b"250 ok\\r\\n")`` server data, ``("lost", "C", n)``
n client bytes the capture misses (the sequence numbers jump), ``("rst", "C")`` a reset. The
connection opens with SYN, SYN/ACK, ACK unless ``handshake`` is off and ends with FIN/ACK from
both sides unless the script reset it or ``close`` is off.
"""

from __future__ import annotations

import socket
from pathlib import Path

import dpkt

Step = tuple[str, bytes] | tuple[str, str, int] | tuple[str, str]

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


class _Writer:
    def __init__(self, path: Path, client: tuple[str, int], server: tuple[str, int], start: float) -> None:
        self.file = path.open("wb")
        self.pcap = dpkt.pcap.Writer(self.file)
        self.client = client
        self.server = server
        self.ts = start
        self.seq = {"C": 1000, "S": 5000}
        self.frames = 0

    def send(self, side: str, flags: int, payload: bytes = b"") -> None:
        other = "S" if side == "C" else "C"
        src, dst = (self.client, self.server) if side == "C" else (self.server, self.client)
        tcp = dpkt.tcp.TCP(
            sport=src[1],
            dport=dst[1],
            seq=self.seq[side],
            ack=self.seq[other] if flags & ACK else 0,
            flags=flags,
            win=65535,
            data=payload,
        )
        ip = dpkt.ip.IP(
            src=socket.inet_aton(src[0]),
            dst=socket.inet_aton(dst[0]),
            p=dpkt.ip.IP_PROTO_TCP,
            ttl=64,
            data=tcp,
        )
        ip.len = len(ip)
        eth = dpkt.ethernet.Ethernet(
            src=b"\x02\x00\x00\x00\x00\x01",
            dst=b"\x02\x00\x00\x00\x00\x02",
            type=dpkt.ethernet.ETH_TYPE_IP,
            data=ip,
        )
        self.ts += 0.001
        self.pcap.writepkt(bytes(eth), ts=self.ts)
        self.frames += 1
        self.seq[side] += len(payload) + (1 if flags & (SYN | FIN) else 0)

    def close(self) -> None:
        self.pcap.close()


def write_pcap(
    path: Path,
    script: list[Step],
    *,
    client: tuple[str, int] = ("10.0.0.1", 40000),
    server: tuple[str, int] = ("10.0.0.2", 25),
    start: float = 1_700_000_000.0,
    handshake: bool = True,
    close: bool = True,
    acks: bool = True,
    noise_first: int = 0,
) -> Path:
    """Write the conversation as a pcap; ``noise_first`` unrelated UDP frames come before it."""
    w = _Writer(path, client, server, start)
    for i in range(noise_first):
        udp = dpkt.udp.UDP(sport=5353, dport=5353, data=b"noise")
        ip = dpkt.ip.IP(
            src=socket.inet_aton("10.9.9.9"),
            dst=socket.inet_aton("10.9.9.8"),
            p=dpkt.ip.IP_PROTO_UDP,
            data=udp,
        )
        ip.len = len(ip)
        eth = dpkt.ethernet.Ethernet(type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
        w.ts += 0.5
        w.pcap.writepkt(bytes(eth), ts=w.ts + i * 0.0)
        w.frames += 1
    if handshake:
        w.send("C", SYN)
        w.send("S", SYN | ACK)
        w.send("C", ACK)
    reset = False
    for step in script:
        kind = step[0]
        if kind in ("C", "S"):
            payload = step[1]
            assert isinstance(payload, bytes)
            w.send(kind, PSH | ACK, payload)
            if acks:
                w.send("S" if kind == "C" else "C", ACK)
        elif kind == "lost":
            side, nbytes = step[1], step[2]
            assert isinstance(side, str) and isinstance(nbytes, int)
            w.seq[side] += nbytes
        elif kind == "rst":
            side = step[1]
            assert isinstance(side, str)
            w.send(side, RST | ACK)
            reset = True
            break
    if close and not reset:
        w.send("C", FIN | ACK)
        w.send("S", FIN | ACK)
        w.send("C", ACK)
    w.close()
    return path


SMTP_OK: list[Step] = [
    ("S", b"220 mx.example.org ESMTP ready\r\n"),
    ("C", b"EHLO client.example.org\r\n"),
    ("S", b"250-mx.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\n"),
    ("C", b"MAIL FROM:<alice@example.org>\r\n"),
    ("S", b"250 2.1.0 Ok\r\n"),
    ("C", b"RCPT TO:<bob@example.net>\r\n"),
    ("S", b"250 2.1.5 Ok\r\n"),
    ("C", b"DATA\r\n"),
    ("S", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
    (
        "C",
        b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: Hello Bob\r\n\r\nHi!\r\n.\r\n",
    ),
    ("S", b"250 2.0.0 Ok: queued as ABC123\r\n"),
    ("C", b"QUIT\r\n"),
    ("S", b"221 2.0.0 Bye\r\n"),
]
