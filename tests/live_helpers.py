"""Helpers of the live-capture tests: synthetic TCP conversations as frames, and a fake frame source."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

import dpkt

from mailtrace.capture.reader import Frame

SYN, FIN, RST, PSH, ACK = dpkt.tcp.TH_SYN, dpkt.tcp.TH_FIN, dpkt.tcp.TH_RST, dpkt.tcp.TH_PUSH, dpkt.tcp.TH_ACK


class Conversation:
    """One TCP connection between a client and a server, as Ethernet frames with rising timestamps."""

    def __init__(self, client: tuple[str, int], server: tuple[str, int], clock: list[float]) -> None:
        self.client, self.server = client, server
        self.clock = clock  # shared between conversations so interleaved frames stay in time order
        self.seq = {True: 1000, False: 5000}  # True: the client's side

    def _frame(self, from_client: bool, flags: int, payload: bytes = b"") -> Frame:
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        tcp = dpkt.tcp.TCP(sport=src[1], dport=dst[1], seq=self.seq[from_client], flags=flags, win=65535,
                           ack=self.seq[not from_client] if flags & ACK else 0, data=payload)
        ip = dpkt.ip.IP(src=socket.inet_aton(src[0]), dst=socket.inet_aton(dst[0]), p=6, ttl=64, data=tcp)
        eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x0800, data=ip)
        used = len(payload) + (1 if flags & (SYN | FIN) else 0)
        self.seq[from_client] = (self.seq[from_client] + used) % 2**32
        self.clock[0] += 0.01
        data = bytes(eth)
        return (round(self.clock[0], 6), 1, data, len(data))

    def open(self) -> list[Frame]:
        return [self._frame(True, SYN), self._frame(False, SYN | ACK), self._frame(True, ACK)]

    def c(self, data: bytes) -> Frame:
        return self._frame(True, PSH | ACK, data)

    def s(self, data: bytes) -> Frame:
        return self._frame(False, PSH | ACK, data)

    def close(self, last_ack: bool = True) -> list[Frame]:
        frames = [self._frame(True, FIN | ACK), self._frame(False, FIN | ACK)]
        if last_ack:
            frames.append(self._frame(True, ACK))
        return frames


def smtp_session(conv: Conversation, subject: str = "hello", finish: bool = True) -> list[Frame]:
    frames = [
        *conv.open(),
        conv.s(b"220 mx.example.test ESMTP\r\n"),
        conv.c(b"EHLO client.test\r\n"),
        conv.s(b"250-mx.example.test\r\n250 AUTH PLAIN\r\n"),
    ]
    if not finish:
        return frames
    message = f"Subject: {subject}\r\nFrom: a@example.test\r\n\r\nbody\r\n.\r\n".encode()
    return [
        *frames,
        conv.c(b"MAIL FROM:<a@example.test>\r\n"), conv.s(b"250 OK\r\n"),
        conv.c(b"RCPT TO:<b@example.test>\r\n"), conv.s(b"250 OK\r\n"),
        conv.c(b"DATA\r\n"), conv.s(b"354 go ahead\r\n"),
        conv.c(message), conv.s(b"250 queued\r\n"),
        conv.c(b"QUIT\r\n"), conv.s(b"221 bye\r\n"),
        *conv.close(),
    ]


@dataclass
class Tick:
    """Time passes without packets."""

    now: float


Item = Frame | Tick | Callable[[], None]


class FakeSource:
    """Plays a script of frames, ticks and actions (``run.interrupt`` ...) as a live capture would,
    checking the stop condition after each item; an exhausted script is the end of the source."""

    name = "fake0"
    linktype = 1

    def __init__(self, script: list[Item], clock: FakeClock | None = None) -> None:
        self.script = script
        self.clock = clock
        self.consumed = 0

    def run(self, on_frame: Callable[[Frame], None], on_tick: Callable[[float], None],
            should_stop: Callable[[], bool]) -> None:
        for item in self.script:
            if should_stop():
                return
            self.consumed += 1
            if isinstance(item, tuple):
                on_frame(item)
            elif isinstance(item, Tick):
                if self.clock is not None:
                    self.clock.now = item.now
                on_tick(item.now)
            else:
                item()

    def kernel_drops(self) -> int:
        return 0


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
