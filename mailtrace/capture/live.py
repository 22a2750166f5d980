"""Live capture on Linux: an AF_PACKET socket read through scapy's ``sniff()`` → raw frames.

This is the only module that imports scapy, and only when a capture starts (``interfaces`` uses its
netlink reader for addresses). No scapy object leaves it: the callback given to :meth:`LiveCapture.run`
receives :class:`~mailtrace.capture.reader.Frame` tuples (timestamp, link type, bytes, wire length),
the same thing the file reader yields, so live frames go through the same decoder as files.

What the socket does, as libpcap does it:

* Ethernet and loopback interfaces are read with ``SOCK_RAW`` (LINKTYPE_ETHERNET), tun-like ones
  without a link header as raw IP; ``any`` and exotic link types are read *cooked* (``SOCK_DGRAM``)
  and get a Linux SLL header built from the socket address (LINKTYPE_LINUX_SLL).
* On a loopback device every packet is seen twice (going out, coming in): the outgoing copy is dropped.
* VLAN tags stripped by the NIC are put back from ``PACKET_AUXDATA``; timestamps come from the
  kernel (``SO_TIMESTAMPNS``), cut to microseconds so a written pcap reads back identical.
* The BPF filter is compiled by libpcap for the socket's link layer with a 256 KiB snap length (GRO/GSO
  frames on loopback exceed 64 KiB) and attached before any packet is read; kernel drops come from
  ``PACKET_STATISTICS``.

Linux only: other systems capture with tcpdump or Wireshark and run ``mailtrace analyze``.
"""

from __future__ import annotations

import contextlib
import ctypes
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailtrace.capture.decode import LINKTYPE_ETHERNET, LINKTYPE_SLL
from mailtrace.capture.reader import Frame

ANY = "any"
SNAPLEN = 262_144
"""Bytes kept per frame (Wireshark's maximum); frames are never cut in practice."""
SOCKET_BUFFER = 32 * 1024 * 1024
"""Kernel receive buffer: room for bursts while the pipeline catches up (``-B`` changes it)."""
SLICE = 0.25
"""Seconds between checks of the stop conditions, ticks of the pipeline and status refreshes."""

LINKTYPE_RAW = 101
DLT_RAW = 12  # what libpcap compiles raw-IP filters for

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_STATISTICS = 6
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
ETH_P_8021Q = 0x8100

ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
ARPHRD_RAWIP = 519
ARPHRD_NONE = 0xFFFE
ARPHRD_NAMES = {
    ARPHRD_ETHER: "ethernet", ARPHRD_LOOPBACK: "loopback", ARPHRD_NONE: "raw IP", ARPHRD_RAWIP: "raw IP",
    512: "ppp", 768: "ipip", 769: "ip6ip6", 776: "sit", 778: "gre", 823: "ip6gre", 801: "802.11",
    803: "802.11 radiotap", 32: "infiniband", 280: "can",
}

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_RUNNING = 0x40

_AUX = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata
_TIMESPEC = struct.Struct("=qq")
_ANC_SIZE = socket.CMSG_SPACE(_AUX.size) + socket.CMSG_SPACE(_TIMESPEC.size) + 64
_SLL = struct.Struct("!HHH8sH")

PERMISSION_HINT = ("run as root or give the interpreter CAP_NET_RAW: "
                   "sudo setcap cap_net_raw,cap_net_admin=eip $(readlink -f $(which python3))")


class LiveError(Exception):
    """Live capture cannot start; the message is one line and says what to do next."""


# ---------------------------------------------------------------------------------------------- interfaces
@dataclass(frozen=True, slots=True)
class Interface:
    """A capture interface as ``mailtrace interfaces`` shows it."""

    name: str
    index: int
    flags: int
    arphrd: int
    mac: str = ""
    addresses: tuple[str, ...] = ()

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)

    @property
    def state(self) -> str:
        if not self.up:
            return "down"
        return "up" if self.flags & IFF_RUNNING else "no-carrier"

    @property
    def kind(self) -> str:
        return ARPHRD_NAMES.get(self.arphrd, f"arphrd {self.arphrd}")


def _sysfs_int(name: str, attr: str) -> int | None:
    try:
        return int(Path("/sys/class/net", name, attr).read_text().strip(), 0)
    except (OSError, ValueError):
        return None


def _interface(name: str, index: int) -> Interface:
    return Interface(name, index, _sysfs_int(name, "flags") or 0, _sysfs_int(name, "type") or 0)


def list_interfaces() -> list[Interface]:
    """Every interface of the system with its state and addresses (no privileges needed)."""
    ensure_linux()
    found: dict[str, Interface] = {}
    try:
        from scapy.arch.linux.rtnetlink import _get_if_list

        for index, info in sorted(_get_if_list().items()):
            found[info["name"]] = Interface(
                info["name"], index, int(info.get("flags", 0)), int(info.get("type", 0)),
                str(info.get("mac") or ""), tuple(str(ip["address"]) for ip in info.get("ips", ())))
    except Exception:
        found = {}
    if not found:
        for index, name in socket.if_nameindex():
            found[name] = _interface(name, index)
    return sorted(found.values(), key=lambda i: i.index)


def default_interface() -> str:
    """What ``-i`` defaults to: the interface of the IPv4 default route, else the first one up."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/route").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[1] == "00000000" and int(fields[3], 16) & 1:
                return fields[0]
    for index, name in socket.if_nameindex():
        iface = _interface(name, index)
        if iface.up and not iface.flags & IFF_LOOPBACK:
            return name
    return "lo"


def ensure_linux() -> None:
    if not sys.platform.startswith("linux"):
        raise LiveError("live capture needs Linux (AF_PACKET); on this system capture with tcpdump or "
                        "Wireshark and run `mailtrace analyze FILE`")


def resolve_interface(name: str) -> Interface | None:
    """The interface called ``name`` (None for ``any``); LiveError if it does not exist or is down."""
    ensure_linux()
    if name == ANY:
        return None
    try:
        index = socket.if_nametoindex(name)
    except OSError:
        names = ", ".join([ANY] + [n for _, n in socket.if_nameindex()])
        raise LiveError(f"no interface {name!r}; capture interfaces: {names}") from None
    iface = _interface(name, index)
    if not iface.up:
        raise LiveError(f"interface {name} is down: bring it up (sudo ip link set {name} up) "
                        "or pick another (mailtrace interfaces)")
    return iface


# ---------------------------------------------------------------------------------------------- filters
CONTEXT_TCP_PORTS = (53, 113)
"""DNS over TCP and ident: what the context layer takes besides DNS over UDP (as ``context.tracker``)."""
DNS_FILTER = "udp and port 53"


def mail_filter(ports: Iterable[int], *, context: bool = False) -> str:
    """The default capture filter: TCP to or from any of the mail ports. With ``context`` also DNS (UDP
    and TCP port 53) and ident (TCP port 113), which the context layer attributes to the mail sessions,
    as ``analyze`` does from a file."""
    wanted = set(ports) | (set(CONTEXT_TCP_PORTS) if context else set())
    text = "tcp and (" + " or ".join(f"port {p}" for p in sorted(wanted)) + ")"
    return f"({text}) or ({DNS_FILTER})" if context else text


def all_ports_filter(*, context: bool = False) -> str:
    """``--all-ports``: all TCP, and with ``context`` the DNS over UDP too."""
    return f"tcp or ({DNS_FILTER})" if context else "tcp"


def compile_filter(expression: str, linktype: int, snaplen: int = SNAPLEN) -> list[tuple[int, int, int, int]]:
    """Compile a tcpdump-syntax filter with libpcap: the BPF instructions ``(code, jt, jf, k)``.

    Raises LiveError for a bad expression, ImportError when libpcap is not installed.
    """
    from scapy.libs.structures import bpf_program
    from scapy.libs.winpcapy import pcap_close, pcap_compile, pcap_freecode, pcap_geterr, pcap_open_dead

    handle = pcap_open_dead(DLT_RAW if linktype == LINKTYPE_RAW else linktype, snaplen)
    prog = bpf_program()
    try:
        if pcap_compile(handle, ctypes.byref(prog), expression.encode(), 1, 0xFFFFFFFF) == -1:
            why = bytes(pcap_geterr(handle)).decode(errors="replace")
            raise LiveError(f"-f {expression!r}: {why}")
        insns = [(i.code, i.jt, i.jf, i.k & 0xFFFFFFFF) for i in prog.bf_insns[: prog.bf_len]]
        pcap_freecode(ctypes.byref(prog))
        return insns
    finally:
        pcap_close(handle)


SKF_AD_PKTTYPE = 0xFFFFF004
SKF_AD_HATYPE = 0xFFFFF01C
_BPF_LD_W_ABS, _BPF_JEQ_K, _BPF_RET_K = 0x20, 0x15, 0x06
LOOPBACK_ECHO_DROP = [
    (_BPF_LD_W_ABS, 0, 0, SKF_AD_PKTTYPE),
    (_BPF_JEQ_K, 0, 3, PACKET_OUTGOING),  # outgoing? check the device type : on to the filter
    (_BPF_LD_W_ABS, 0, 0, SKF_AD_HATYPE),
    (_BPF_JEQ_K, 0, 1, ARPHRD_LOOPBACK),  # loopback? drop : on to the filter
    (_BPF_RET_K, 0, 0, 0),
]
"""Kernel-side: a loopback device shows every packet twice (out, then in); drop the outgoing copy
before it costs a read (the program then goes on with the user's filter)."""


def kernel_program(insns: list[tuple[int, int, int, int]] | None,
                   snaplen: int = SNAPLEN) -> list[tuple[int, int, int, int]]:
    """The socket filter: loopback echoes dropped, then the compiled filter (or accept everything)."""
    return LOOPBACK_ECHO_DROP + (insns if insns is not None else [(_BPF_RET_K, 0, 0, snaplen)])


def _attach_filter(sock: socket.socket, insns: list[tuple[int, int, int, int]]) -> None:
    program = b"".join(struct.pack("=HBBI", *i) for i in insns)
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HP", len(insns), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


# ---------------------------------------------------------------------------------------------- capture
class LiveCapture:
    """An open capture on one interface (or ``any``). :meth:`run` sniffs until told to stop."""

    def __init__(self, name: str, bpf: str | None, *, promisc: bool = True, default_filter: bool = False,
                 snaplen: int = SNAPLEN, buffer_bytes: int = SOCKET_BUFFER) -> None:
        """``bpf`` None captures everything; ``default_filter`` says it was not the user's: if libpcap
        is missing the capture then runs unfiltered (the decoder skips the rest) instead of failing."""
        iface = resolve_interface(name)
        self.name = name
        self.snaplen = snaplen
        self.notes: list[str] = []
        arphrd = iface.arphrd if iface else -1
        if arphrd in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
            self.linktype, self.cooked = LINKTYPE_ETHERNET, False
        elif arphrd in (ARPHRD_NONE, ARPHRD_RAWIP):
            self.linktype, self.cooked = LINKTYPE_RAW, False
        else:
            self.linktype, self.cooked = LINKTYPE_SLL, True
        self.filter = bpf
        insns: list[tuple[int, int, int, int]] | None = None
        if bpf:
            try:
                insns = compile_filter(bpf, DLT_RAW if self.cooked else self.linktype, snaplen)
            except (ImportError, OSError):
                if not default_filter:
                    raise LiveError("-f needs libpcap to compile the filter: install it "
                                    "(e.g. sudo apt-get install libpcap0.8) or run without -f") from None
                self.filter = None
                self.notes.append("libpcap not found: no kernel filter; other packets are skipped in Python")
            except LiveError as exc:
                if self.cooked:
                    why = f"with -i {name} the filter sees IP packets, no link header"
                    raise LiveError(f"{exc} ({why})") from None
                raise
        try:
            self.sock = self._open(name, iface, insns, promisc, buffer_bytes)
        except PermissionError:
            raise LiveError(f"no permission to capture on {name}: {PERMISSION_HINT}") from None
        except OSError as exc:
            raise LiveError(f"cannot capture on {name}: {exc.strerror or exc}") from None
        # imported now, so that the first second of a --duration is not spent on it
        from scapy.sendrecv import sniff

        self._sniff = sniff
        self._buf = bytearray(snaplen)
        self._view = memoryview(self._buf)
        self.dropped = 0
        self.failure: OSError | None = None

    def _open(self, name: str, iface: Interface | None, insns: list[tuple[int, int, int, int]] | None,
              promisc: bool, buffer_bytes: int) -> socket.socket:
        """The packet socket, filter attached before the first packet is queued."""
        kind = socket.SOCK_DGRAM if self.cooked else socket.SOCK_RAW
        # Bound sockets start with protocol 0 (nothing is queued) until bind() names the interface; ``any``
        # is no interface, so its socket queues from creation on and is drained once the filter is on.
        sock = socket.socket(socket.AF_PACKET, kind, 0 if iface else socket.htons(ETH_P_ALL))
        try:
            _attach_filter(sock, kernel_program(insns, self.snaplen))
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer_bytes)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            if iface is None:
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError, InterruptedError):
                    while True:
                        sock.recv(1)
                sock.setblocking(True)
            else:
                sock.bind((name, ETH_P_ALL))
                if promisc and iface.arphrd == ARPHRD_ETHER:
                    mreq = struct.pack("iHH8s", iface.index, PACKET_MR_PROMISC, 0, b"")
                    with contextlib.suppress(OSError):
                        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        except BaseException:
            sock.close()
            raise
        return sock

    # ------------------------------------------------------------------ reading
    def read_frame(self) -> Frame | None:
        """Read one frame from the socket; None for a frame that is not kept.

        Never blocks: BlockingIOError when nothing is queued."""
        nbytes, ancdata, _flags, addr = self.sock.recvmsg_into([self._view], _ANC_SIZE, socket.MSG_DONTWAIT)
        _ifname, proto, pkttype, hatype, hwaddr = addr[:5]
        if pkttype == PACKET_OUTGOING and hatype == ARPHRD_LOOPBACK:
            return None  # loopback echo (the kernel filter drops these already; this is the safety net)
        ts: float | None = None
        wire_len = nbytes
        vlan: bytes | None = None
        for level, kind, cdata in ancdata:
            if level == SOL_PACKET and kind == PACKET_AUXDATA and len(cdata) >= _AUX.size:
                status, tp_len, _snap, _mac, _net, tci, tpid = _AUX.unpack_from(cdata)
                wire_len = tp_len
                if tci or status & TP_STATUS_VLAN_VALID:
                    tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else ETH_P_8021Q
                    vlan = struct.pack("!HH", tpid, tci)
            elif level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(cdata) >= _TIMESPEC.size:
                sec, nsec = _TIMESPEC.unpack_from(cdata)
                ts = sec + (nsec // 1000) / 1e6
        if ts is None:
            ts = round(time.time(), 6)  # noqa: TID251 - the kernel gave no timestamp: the capture's clock
        data = bytes(self._view[:nbytes])
        if self.cooked:
            if vlan is not None:  # as libpcap: the tag follows the SLL header, which names 802.1Q
                data = vlan[2:] + struct.pack("!H", proto) + data
                proto = int.from_bytes(vlan[:2], "big")
                wire_len += 4
            header = _SLL.pack(pkttype, hatype, len(hwaddr), bytes(hwaddr[:8]), proto)
            return (ts, LINKTYPE_SLL, header + data, wire_len + len(header))
        if vlan is not None and self.linktype == LINKTYPE_ETHERNET and nbytes >= 12:
            data = data[:12] + vlan + data[12:]
            wire_len += 4
        return (ts, self.linktype, data, wire_len)

    def run(self, on_frame: Callable[[Frame], None], on_tick: Callable[[float], None],
            should_stop: Callable[[], bool], slice_seconds: float = SLICE) -> None:
        """Sniff until ``should_stop()``: each frame goes to ``on_frame``, and every ``slice_seconds``
        (and when sniffing ends) ``on_tick(now)`` lets time pass. An exception from a callback ends the
        capture and is raised here (scapy's sniff would otherwise swallow it and close the socket)."""
        sniff = self._sniff
        supersocket, session = _scapy_glue(self)
        error: list[BaseException] = []

        def prn(captured: _Captured) -> None:
            if not error:
                try:
                    on_frame(captured.frame)
                except BaseException as exc:  # re-raised after sniff() returns
                    error.append(exc)

        def stop(_captured: _Captured) -> bool:
            return bool(error) or should_stop()

        while not should_stop():
            sniff(opened_socket=supersocket, session=session, store=False, prn=prn, stop_filter=stop,
                  timeout=slice_seconds, quiet=True)
            if error:
                raise error[0]
            if self.failure is not None:
                raise LiveError(f"capture on {self.name} stopped: {self.failure.strerror or self.failure}")
            on_tick(time.time())  # noqa: TID251 - live capture: time passes without packets

    def kernel_drops(self) -> int:
        """Packets the kernel dropped since the start because the socket buffer was full."""
        with contextlib.suppress(OSError):
            _received, dropped = struct.unpack("II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
            self.dropped += dropped  # the kernel resets its counters on every read
        return self.dropped

    def close(self) -> None:
        self.kernel_drops()
        self.sock.close()


class _Captured:
    """What sniff() passes to ``prn``: a frame (sniff sets ``sniffed_on`` on it, so not a bare tuple)."""

    __slots__ = ("frame", "sniffed_on")

    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        self.sniffed_on: Any = None


DRAIN = 512
"""Frames read per wake-up before sniff() looks at its clock again."""


def _scapy_glue(capture: LiveCapture) -> tuple[Any, Any]:
    """A scapy SuperSocket over the capture's socket and a sniff session that reads it.

    The session drains what is queued after each select() (non-blocking reads, at most DRAIN) and
    yields the frames as they are: no scapy packet is built or dissected per frame — that alone would
    cost more than the whole pipeline — and none leaves this module.
    """
    from scapy.sessions import DefaultSession
    from scapy.supersocket import SuperSocket

    class _Socket(SuperSocket):
        desc = "mailtrace AF_PACKET reader"

        def __init__(self) -> None:
            self.ins = capture.sock
            self.outs = None

        def close(self) -> None:
            """The capture owns the socket."""
            self.closed = True

    class _Drain(DefaultSession):
        def recv(self, sock: Any) -> Iterator[_Captured]:  # type: ignore[override] # sniff only passes it on
            for _ in range(DRAIN):
                try:
                    frame = capture.read_frame()
                except BlockingIOError:
                    return
                except OSError as exc:  # the interface went away: end sniff() (EOFError), then say why
                    capture.failure = exc
                    raise EOFError from exc
                if frame is not None:
                    yield _Captured(frame)

    return _Socket(), _Drain()
