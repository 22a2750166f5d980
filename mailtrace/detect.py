"""Which protocol a connection speaks: by port, or by its first bytes (like Zeek's DPD).

Connections on other ports are sniffed: the first bytes of each direction are scored by every
registered dissector's ``sniff``. Proxy handshakes that carry mail in real captures — an HTTP
``CONNECT`` or a SOCKS4/4a/5 negotiation — are recognised and stripped first; the session then
keeps the proxy connection's endpoints and names the tunnel.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from mailtrace.model import CLIENT, Chunk, Direction, StreamItem
from mailtrace.protocols import REGISTRY, DissectorClass


@dataclass
class Decision:
    """The sniffer's verdict."""

    protocol: DissectorClass | None
    """None: not mail."""
    tunnel: str | None = None
    implicit_tls: bool = False
    preamble: list[tuple[Direction, bytes, int, float]] = field(default_factory=list)
    """Proxy handshake lines for display: (direction, text, frame, ts)."""
    skip: tuple[int, int] = (0, 0)
    """Bytes at the start of the client / server stream that belong to the proxy handshake."""
    target: str | None = None


class Sniffer:
    """Buffers the first bytes of an unknown-port connection until it can decide."""

    def __init__(self, max_bytes: int, tls_port_protocols: dict[int, DissectorClass]) -> None:
        self.max_bytes = max_bytes
        self.buf = [bytearray(), bytearray()]
        self.items: list[StreamItem] = []
        self.firsts: list[tuple[int, float] | None] = [None, None]
        self.tls_port_protocols = tls_port_protocols

    def feed(self, item: StreamItem) -> Decision | None:
        self.items.append(item)
        if isinstance(item, Chunk):
            d = 0 if item.direction is CLIENT else 1
            if self.firsts[d] is None:
                self.firsts[d] = (item.frame, item.ts)
            room = self.max_bytes - len(self.buf[d])
            if room > 0:
                self.buf[d] += item.data[:room]
        elif not self.buf[0] and not self.buf[1]:
            return None
        decision = self._decide()
        if decision is None and (len(self.buf[0]) >= self.max_bytes or len(self.buf[1]) >= self.max_bytes):
            return Decision(None)
        return decision

    def end(self) -> Decision:
        """The connection ended before a decision: decide on what there is."""
        return self._decide(final=True) or Decision(None)

    def _decide(self, final: bool = False) -> Decision | None:
        client, server = bytes(self.buf[0]), bytes(self.buf[1])
        if client.startswith(b"CONNECT "):
            return self._http_connect(client, server, final)
        if client[:1] == b"\x04" and len(client) >= 2 and client[1] in (1, 2):
            return self._socks4(client, server, final)
        if client[:1] == b"\x05" and len(client) >= 2 and 0 < client[1] <= 16 and len(client) >= 2 + client[1] \
                and not server[:1].isalnum():
            return self._socks5(client, server, final)
        return self._inner(client, server, (0, 0), None, final, [], None)

    def _inner(self, client: bytes, server: bytes, skip: tuple[int, int], tunnel: str | None, final: bool,
               preamble: list[tuple[Direction, bytes, int, float]], target_port: int | None) -> Decision | None:
        if target_port is not None and target_port in self.tls_port_protocols and client[:1] == b"\x16":
            return Decision(self.tls_port_protocols[target_port], tunnel, True, preamble, skip,
                            str(target_port))
        best, undecided = _best_dissector(client, server, target_port)
        if best is not None:
            return Decision(best, tunnel, False, preamble, skip)
        if not undecided or final:
            return Decision(None)
        return None

    # ------------------------------------------------------------------ proxies
    def _at(self, d: int) -> tuple[int, float]:
        return self.firsts[d] or (0, 0.0)

    def _http_connect(self, client: bytes, server: bytes, final: bool) -> Decision | None:
        c_end = client.find(b"\r\n\r\n")
        s_end = server.find(b"\r\n\r\n")
        if c_end < 0 or s_end < 0:
            return Decision(None) if final else None
        status = server.split(b" ", 2)
        if len(status) < 2 or not server.startswith(b"HTTP/") or not status[1].startswith(b"2"):
            return Decision(None)
        request = client[: client.find(b"\r\n")]
        target = request.split(b" ")[1] if len(request.split(b" ")) > 1 else b""
        port_text = target.rsplit(b":", 1)[-1]
        port = int(port_text) if port_text.isdigit() and len(port_text) <= 5 else None
        preamble = [(Direction.CLIENT, request, *self._at(0)),
                    (Direction.SERVER, server[: server.find(b"\r\n")], *self._at(1))]
        skip = (c_end + 4, s_end + 4)
        return self._inner(client[skip[0]:], server[skip[1]:], skip, "http-connect", final, preamble, port)

    def _socks4(self, client: bytes, server: bytes, final: bool) -> Decision | None:
        nul = client.find(b"\x00", 8)
        if nul < 0 or len(server) < 8:
            return Decision(None) if final or len(client) > 512 else None
        end = nul + 1
        if client[4:7] == b"\x00\x00\x00" and client[7] != 0:  # SOCKS4a: a host name follows
            nul2 = client.find(b"\x00", end)
            if nul2 < 0:
                return None if not final else Decision(None)
            end = nul2 + 1
        if server[0] != 0 or server[1] != 90:
            return Decision(None)
        (port,) = struct.unpack("!H", client[2:4])
        preamble = [(Direction.CLIENT, f"SOCKS4 CONNECT port {port}".encode(), *self._at(0)),
                    (Direction.SERVER, b"SOCKS4 request granted", *self._at(1))]
        return self._inner(client[end:], server[8:], (end, 8), "socks", final, preamble, port)

    def _socks5(self, client: bytes, server: bytes, final: bool) -> Decision | None:
        greet = 2 + client[1]
        if len(server) < 2:
            return Decision(None) if final else None
        method = server[1]
        c, s = greet, 2
        if method == 2:  # username/password subnegotiation (RFC 1929)
            if len(client) < c + 2:
                return None if not final else Decision(None)
            ulen = client[c + 1]
            if len(client) < c + 2 + ulen + 1:
                return None if not final else Decision(None)
            plen = client[c + 2 + ulen]
            c += 3 + ulen + plen
            s += 2
        elif method != 0:
            return Decision(None)
        if len(client) < c + 5 or len(server) < s + 5:
            return Decision(None) if final else None
        atyp = client[c + 3]
        if atyp == 1:
            alen = 4
        elif atyp == 4:
            alen = 16
        elif atyp == 3:
            alen = 1 + client[c + 4]
        else:
            return Decision(None)
        req_end = c + 4 + alen + 2
        if len(client) < req_end:
            return None if not final else Decision(None)
        (port,) = struct.unpack("!H", client[req_end - 2 : req_end])
        if server[s + 1] != 0:
            return Decision(None)
        ratyp = server[s + 3]
        rlen = 4 if ratyp == 1 else 16 if ratyp == 4 else 1 + server[s + 4] if ratyp == 3 else -1
        if rlen < 0:
            return Decision(None)
        rep_end = s + 4 + rlen + 2
        if len(server) < rep_end:
            return None if not final else Decision(None)
        preamble = [(Direction.CLIENT, f"SOCKS5 CONNECT port {port}".encode(), *self._at(0)),
                    (Direction.SERVER, b"SOCKS5 request granted", *self._at(1))]
        return self._inner(client[req_end:], server[rep_end:], (req_end, rep_end), "socks", final, preamble, port)


def _best_dissector(client: bytes, server: bytes, target_port: int | None) -> tuple[DissectorClass | None, bool]:
    """The dissector whose ``sniff`` scores these bytes highest (1.0 or more), and whether any other
    could still say yes with more bytes (a score of 0 or more); a proxy's target port adds 0.5."""
    best: DissectorClass | None = None
    best_score = 0.0
    undecided = False
    for cls in REGISTRY:
        score = cls.sniff(client, server)
        if target_port is not None and target_port in cls.default_ports:
            score += 0.5
        if score >= 1.0 and score > best_score:
            best, best_score = cls, score
        elif score >= 0:
            undecided = True
    return best, undecided


def rejects_first_bytes(data: bytes, from_client: bool, max_bytes: int) -> bool:
    """Whether a fresh :class:`Sniffer` fed only ``data`` (the connection's first bytes, from the client
    or from the server) would judge the connection not mail, found without building one.

    Most connections on other ports are HTTP, TLS or binary: every dissector's ``sniff`` rejects their
    first bytes, and this answers that with the scores ``Sniffer._inner`` uses (:func:`_best_dissector`).
    False means "ask the sniffer" (mail, undecided, or a proxy handshake, which the sniffer unwraps first).
    """
    head = data[:max_bytes]
    if from_client:
        if head[:1] in _PROXY_STARTS:
            return False
        client, server = head, b""
    else:
        client, server = b"", head
    best, undecided = _best_dissector(client, server, None)
    return best is None and (not undecided or len(head) >= max_bytes)


_PROXY_STARTS = (b"C", b"\x04", b"\x05")
"""First client bytes that may begin an HTTP CONNECT or a SOCKS handshake (``Sniffer._decide``)."""


def strip_preamble(items: list[StreamItem], skip: tuple[int, int]) -> list[StreamItem]:
    """Drop the proxy handshake bytes from the start of each direction's buffered items."""
    left = [skip[0], skip[1]]
    out: list[StreamItem] = []
    for item in items:
        if isinstance(item, Chunk):
            d = 0 if item.direction is CLIENT else 1
            if left[d]:
                if len(item.data) <= left[d]:
                    left[d] -= len(item.data)
                    continue
                out.append(Chunk(item.direction, item.data[left[d]:], item.ts, item.frame))
                left[d] = 0
                continue
        out.append(item)
    return out
