"""Capture files: pcap and pcapng, plain or compressed, from a path or stdin → raw frames.

This is the only module that opens capture files. It walks records with ``struct`` instead of
``dpkt.pcap.Reader`` for two reasons measured on real files: it is about three times faster per
record (no object per packet), and it survives damage that dpkt does not (a last record cut short,
a record claiming gigabytes, several pcapng interfaces with different link types). Damage never
raises: the reader stops at the damaged record and says why in ``CaptureFile.problems``.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import mmap
import os
import stat
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
MAX_RECORD = 256 * 1024
"""Largest frame we accept (Wireshark's own maximum); a bigger record length means damage."""
MAX_BLOCK = 16 * 1024 * 1024
"""Largest pcapng block we accept."""
READ_SIZE = 1 << 20
TLS_KEYLOG_SECRETS = 0x544C534B  # pcapng Decryption Secrets Block type "TLSK"


Frame = tuple[float, int, bytes, int]
"""One captured frame: (capture time, link type, captured bytes, length on the wire). A plain tuple
because one is built per packet on the hot path (a NamedTuple costs three times as much)."""


class CaptureError(Exception):
    """The input cannot be read at all (missing, not a capture, no permission).

    The message is ``"<name>: <reason>"``; ``name`` and ``reason`` are also kept apart, so a run over
    several inputs can list the unreadable one with its reason (:meth:`CaptureFile.unreadable`)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason

    def __reduce__(self) -> tuple[type[CaptureError], tuple[str, str]]:
        return (CaptureError, (self.name, self.reason))


@dataclass
class CaptureFile:
    """An opened capture: iterate ``frames()`` once; problems and secrets fill in as it is read."""

    name: str
    filetype: str
    """``pcap``, ``pcap-ns``, ``pcapng``; with ``+gzip``/``+bzip2``/``+xz`` when compressed."""
    stream: BinaryIO
    problems: list[str] = field(default_factory=list)
    """What was wrong with the file (truncated, damaged record): it is still analysed up to there."""
    truncated: bool = False
    tls_secrets: list[bytes] = field(default_factory=list)
    """NSS key log text from pcapng Decryption Secrets Blocks."""
    bytes_read: int = 0
    raw: BinaryIO | None = None
    """The underlying file when ``stream`` is a decompressor (closed with it)."""
    _endian: str = "<"
    _tsres: float = 1e-6
    _linktype: int = 1
    size: int | None = None
    """Bytes of the file on disk, when it is a regular file (for progress display)."""
    source: BinaryIO | None = field(default=None, repr=False)
    """The file as opened, before decompression: where it stands tells how far reading got."""
    decompressor: _UntilDamage | None = field(default=None, repr=False)
    """The decompressor of a compressed file: it tells whether the compressed data broke off."""
    error: str | None = None
    """Why the input could not be read at all (then it has no frames, ``filetype`` is empty): an input
    of a run over several files that is listed in the report instead of being left out."""

    @classmethod
    def unreadable(cls, exc: CaptureError) -> CaptureFile:
        """A stand-in for an input that :func:`open_capture` refused: no frames, only its name and why."""
        return cls(exc.name, "", io.BytesIO(), error=exc.reason, size=0)

    def position(self) -> int | None:
        """Bytes of the file (as stored, compressed or not) read so far; None when unknown."""
        if self.source is None or self.size is None:
            return None
        try:
            where = self.source.tell()
        except (OSError, ValueError):
            return None
        return where if self.raw is not None else max(where, self.bytes_read)

    def mapped(self) -> MappedPcap | None:
        """The whole file memory-mapped, when it is an uncompressed pcap on disk and ``frames()`` has
        not been started: for a caller that walks the records itself and slices out only the frames it
        wants (the pipeline's skip loop). None otherwise (pcapng, compressed, a pipe): use ``frames()``."""
        if self.filetype not in ("pcap", "pcap-ns") or self.raw is not None or self.bytes_read:
            return None
        buf = _map(self.stream)
        if buf is None:
            return None
        return MappedPcap(self, buf, self._endian, self._tsres, self._linktype)

    def close(self) -> None:
        """Close the file unread: the parent of a forked run (mailtrace/forked.py) leaves the reading to
        its child, which has its own copy of the descriptors. ``frames()`` closes at its end anyway."""
        self.stream.close()
        if self.raw is not None:
            self.raw.close()

    def frames(self) -> Iterator[Frame]:
        if self.error is not None:
            return
        try:
            if self.filetype.startswith("pcapng"):
                yield from self._pcapng_frames()
            else:
                yield from self._pcap_frames()
        except (EOFError, OSError, lzma.LZMAError, zlib_error) as exc:
            self._damaged(f"read error: {exc}")
        else:
            if self.decompressor is not None and self.decompressor.error is not None:
                self._damaged(f"the compressed data breaks off ({self.decompressor.error}): "
                              "analysed up to there")
        finally:
            self.stream.close()
            if self.raw is not None:
                self.raw.close()

    def _damaged(self, why: str) -> None:
        self.truncated = True
        self.problems.append(why)

    def _header_cut_short(self, have: int) -> None:
        self._damaged(f"last record header cut short ({have} of 16 bytes)")

    def _record_too_long(self, at: int, incl: int) -> None:
        self._damaged(f"damaged record at byte {at}: length {incl} is larger than {MAX_RECORD}; "
                      "the rest of the file is not read")

    def _record_cut_short(self, have: int, incl: int) -> None:
        self._damaged(f"last record cut short ({have} of {incl} bytes)")

    # ------------------------------------------------------------------ pcap
    def _pcap_frames(self) -> Iterator[Frame]:
        """Walk the records. A regular file is memory-mapped (a third less CPU per record than reading
        blocks); decompressors are read in blocks. The same loop serves both. A pipe (stdin) is read
        with ``read1``: whatever has arrived, up to a block, so a record is handed on as soon as it is
        whole (``tcpdump -U -w - | mailtrace analyze -`` prints sessions as they end, instead of
        waiting for a full block of capture to come in)."""
        rec = struct.Struct(self._endian + "IIII")
        unpack_from = rec.unpack_from
        res = self._tsres
        linktype = self._linktype
        mapped = _map(self.stream) if self.raw is None else None
        if mapped is not None:
            read: Callable[[int], bytes] = _no_more
            buf: bytes | mmap.mmap = mapped
            pos = 24  # the file header
            released = 0
        else:
            # a regular (compressed) file: full blocks; anything else (a pipe): what has arrived
            read = self.stream.read if self.size is not None else getattr(self.stream, "read1", self.stream.read)
            buf = read(READ_SIZE)
            pos = 0
            released = 0
        total = 0
        size = len(buf)
        next_release = released + RELEASE_EVERY if mapped is not None else float("inf")
        while True:
            if pos + 16 > size:
                rest = buf[pos:]
                while len(rest) < 16:  # once for a file; a pipe may hand over less
                    more = read(READ_SIZE)
                    if not more:
                        break
                    rest += more
                buf = rest
                size = len(buf)
                total += pos
                pos = 0
                if not buf:
                    break
                if size < 16:
                    self._header_cut_short(size)
                    break
            sec, frac, incl, orig = unpack_from(buf, pos)
            if incl > MAX_RECORD:
                self._record_too_long(total + pos, incl)
                break
            end = pos + 16 + incl
            if end > size:
                rest = buf[pos:]
                end = 16 + incl
                while len(rest) < end:
                    more = read(max(READ_SIZE, end - len(rest)))
                    if not more:
                        break
                    rest += more
                buf = rest
                size = len(buf)
                total += pos
                pos = 0
                if end > size:
                    self._record_cut_short(size - 16, incl)
                    break
            yield (sec + frac * res, linktype, buf[pos + 16 : end], orig if orig >= incl else incl)
            pos = end
            if pos > next_release:
                assert mapped is not None
                released = _release(mapped, released, pos)
                next_release = released + RELEASE_EVERY
            self.bytes_read = total + pos  # as it goes: a memory-mapped file has no read position
        self.bytes_read = total + pos
        if mapped is not None:
            mapped.close()

    # ------------------------------------------------------------------ pcapng
    def _pcapng_frames(self) -> Iterator[Frame]:
        read = self.stream.read
        endian = "<"
        interfaces: list[tuple[int, float, float]] = []  # (linktype, ts unit, ts offset)
        offset = 0
        while True:
            head = read(8)
            if not head:
                break
            if len(head) < 8:
                self._damaged(f"last block header cut short at byte {offset}")
                break
            if head[:4] == PCAPNG_SHB:
                bom = read(4)
                if len(bom) < 4:
                    self._damaged("section header cut short")
                    break
                endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
                (blen,) = struct.unpack(endian + "I", head[4:8])
                rest_len = blen - 12
                if blen < 28 or blen > MAX_BLOCK or blen % 4:
                    self._damaged(f"damaged section header at byte {offset}")
                    break
                rest = read(rest_len)
                if len(rest) < rest_len:
                    self._damaged("section header cut short")
                    break
                interfaces = []
                offset += blen
                continue
            btype, blen = struct.unpack(endian + "II", head)
            if blen < 12 or blen > MAX_BLOCK or blen % 4:
                self._damaged(f"damaged block at byte {offset}: length {blen}; the rest of the file is not read")
                break
            body = read(blen - 8)
            if len(body) < blen - 8:
                self._damaged(f"last block cut short ({len(body) + 8} of {blen} bytes)")
                break
            offset += blen
            body = body[:-4]  # trailing block length
            if btype == 6 and len(body) >= 20:  # Enhanced Packet Block
                iface, hi, lo, incl, orig = struct.unpack_from(endian + "IIIII", body)
                if iface >= len(interfaces):
                    self.problems.append(f"packet for unknown interface {iface} skipped")
                    continue
                linktype, unit, tsoff = interfaces[iface]
                data = body[20 : 20 + incl]
                yield (((hi << 32) | lo) * unit + tsoff, linktype, data, max(orig, len(data)))
            elif btype == 1 and len(body) >= 8:  # Interface Description Block
                linktype, _reserved, _snap = struct.unpack_from(endian + "HHI", body)
                unit, tsoff = _interface_options(body[8:], endian)
                interfaces.append((linktype, unit, tsoff))
            elif btype == 3 and len(body) >= 4:  # Simple Packet Block: interface 0, no timestamp
                (orig,) = struct.unpack_from(endian + "I", body)
                if interfaces:
                    data = body[4 : 4 + orig]
                    yield (0.0, interfaces[0][0], data, max(orig, len(data)))
            elif btype == 2 and len(body) >= 20:  # obsolete Packet Block
                iface, _drops, hi, lo, incl, orig = struct.unpack_from(endian + "HHIIII", body)
                if iface < len(interfaces):
                    linktype, unit, tsoff = interfaces[iface]
                    data = body[20 : 20 + incl]
                    yield (((hi << 32) | lo) * unit + tsoff, linktype, data, max(orig, len(data)))
            elif btype == 0x0A and len(body) >= 8:  # Decryption Secrets Block
                stype, slen = struct.unpack_from(endian + "II", body)
                if stype == TLS_KEYLOG_SECRETS:
                    self.tls_secrets.append(body[8 : 8 + slen])
        self.bytes_read = offset


class MappedPcap:
    """A pcap file mapped into memory, for a caller that walks the records itself (``Analyzer``'s
    skip loop): it reads record headers with ``struct`` straight from ``buf`` and slices out only the
    frames it keeps. Records start at ``FIRST_RECORD``; the helpers below keep what ``frames()`` would
    report (problems, ``bytes_read``, pages given back) the same, whoever walks the records."""

    __slots__ = ("buf", "capture", "endian", "linktype", "res", "size")

    def __init__(self, capture: CaptureFile, buf: mmap.mmap, endian: str, res: float, linktype: int) -> None:
        self.capture = capture
        self.buf = buf
        self.size = len(buf)
        self.endian = endian
        """``<`` or ``>``: the byte order of the record headers (frames are network byte order)."""
        self.res = res
        """Seconds per unit of the record headers' second field (1e-6 or 1e-9)."""
        self.linktype = linktype

    FIRST_RECORD = 24

    def stop(self, pos: int, incl: int | None) -> None:
        """The walk cannot go on at ``pos``: the end of the file, or a damaged record, reported as
        ``frames()`` reports it. ``incl`` is the record's length when its header was read."""
        capture = self.capture
        left = self.size - pos
        if incl is None:
            if 0 < left < 16:
                capture._header_cut_short(left)
        elif incl > MAX_RECORD:
            capture._record_too_long(pos, incl)
        elif left < 16 + incl:
            capture._record_cut_short(left - 16, incl)
        capture.bytes_read = pos

    def release(self, released: int, pos: int) -> int:
        """Give back the pages before ``pos`` (as ``frames()`` does every ``RELEASE_EVERY`` bytes);
        returns where the next release starts."""
        self.capture.bytes_read = pos
        return _release(self.buf, released, pos)

    def close(self) -> None:
        self.buf.close()
        self.capture.stream.close()


RELEASE_EVERY = 4 * 1024 * 1024
"""Mapped pages behind the read position are given back this often, so the resident set of a
memory-mapped capture stays flat instead of growing with the file (they count in the peak RSS: at
16 MiB, up to 26 MiB of a process's were the capture's pages)."""


def _release(mapped: mmap.mmap, start: int, pos: int) -> int:
    """Drop the pages of [start, pos) from this process (the kernel keeps them cached for others)."""
    end = pos - pos % mmap.PAGESIZE
    if end > start and hasattr(mmap, "MADV_DONTNEED"):
        try:
            mapped.madvise(mmap.MADV_DONTNEED, start, end - start)
        except (OSError, ValueError):
            return pos
    return end


def _no_more(_: int) -> bytes:
    return b""


def _map(stream: BinaryIO) -> mmap.mmap | None:
    """A read-only map of a regular, uncompressed file, or None."""
    try:
        fileno = stream.fileno()
        if not stat.S_ISREG(os.fstat(fileno).st_mode) or os.fstat(fileno).st_size == 0:
            return None
        return mmap.mmap(fileno, 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError, io.UnsupportedOperation):
        return None


def _interface_options(opts: bytes, endian: str) -> tuple[float, float]:
    """Timestamp unit and offset of an interface (if_tsresol, if_tsoffset)."""
    unit, tsoff = 1e-6, 0.0
    pos = 0
    while pos + 4 <= len(opts):
        code, length = struct.unpack_from(endian + "HH", opts, pos)
        value = opts[pos + 4 : pos + 4 + length]
        if code == 0:
            break
        if code == 9 and length >= 1:
            res = value[0]
            unit = 2.0 ** -(res & 0x7F) if res & 0x80 else 10.0**-res
        elif code == 14 and length >= 8:
            (tsoff,) = struct.unpack(endian + "q", value[:8])
        pos += 4 + length + (-length % 4)
    return unit, float(tsoff)


try:
    from zlib import error as zlib_error
except ImportError:  # pragma: no cover - zlib is always there on CPython
    zlib_error = OSError  # type: ignore[misc,assignment]


def _damage_text(exc: BaseException) -> str:
    """What a decompressor's error means, in words, with the library's own text in brackets
    (zlib's "Error -3 while decompressing data: invalid bit length repeat" read like our crash)."""
    raw = str(exc).strip() or type(exc).__name__
    detail = raw.split(": ", 1)[1] if raw.startswith("Error ") and ": " in raw else raw
    if isinstance(exc, EOFError):
        return f"the compressed data ends too early ({detail})"
    return f"the compressed data is damaged ({detail})"


class _UntilDamage(io.RawIOBase):
    """A decompressor read until its data ends or breaks: a cut or damaged ``.gz``/``.bz2``/``.xz`` gives
    everything before the damage, then end of file, and says why in ``error`` (tshark reads such files
    up to the damage too)."""

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self.inner = inner
        self.error: str | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.error is not None:
            return 0
        try:
            data = self.inner.read1(len(buffer))  # type: ignore[attr-defined]
        except (EOFError, OSError, lzma.LZMAError, zlib_error) as exc:
            self.error = _damage_text(exc)
            return 0
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.inner.close()
        super().close()


def _read_up_to(source: io.RawIOBase, size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the end of the input (reads until then)."""
    data = b""
    while len(data) < size:
        piece = source.read(size - len(data))
        if not piece:
            break
        data += piece
    return data


class _Prefixed(io.RawIOBase):
    """``head`` (bytes already read) followed by the rest of ``source``: stdin after its file header."""

    def __init__(self, head: bytes, source: io.RawIOBase) -> None:
        super().__init__()
        self.head = head
        self.source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.source.read(len(buffer))
        if not data:
            return 0
        buffer[: len(data)] = data
        return len(data)


def _decompressed(raw: BinaryIO, name: str) -> tuple[BinaryIO, str]:
    """Wrap ``raw`` in the right decompressor, judged by magic bytes, not by the file name."""
    peek = _peek(raw, 6)
    if peek.startswith(b"\x1f\x8b"):
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb")), "+gzip"
    if peek.startswith(b"BZh"):
        return cast(BinaryIO, bz2.BZ2File(raw, "rb")), "+bzip2"
    if peek.startswith(b"\xfd7zXZ\x00"):
        return cast(BinaryIO, lzma.LZMAFile(raw, "rb")), "+xz"
    return raw, ""


def _peek(stream: BinaryIO, n: int) -> bytes:
    if isinstance(stream, io.BufferedReader):
        return stream.peek(n)[:n]
    raise TypeError("stream must be buffered")  # pragma: no cover - we always wrap


def _located(capture: CaptureFile, raw: BinaryIO) -> CaptureFile:
    """Remember the underlying file and its size, so progress can be shown while reading."""
    try:
        info = os.fstat(raw.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return capture
    if stat.S_ISREG(info.st_mode):
        capture.source = raw
        capture.size = info.st_size
    return capture


def open_capture(path: str) -> CaptureFile:
    """Open ``path`` (or ``-`` for stdin) and read its file header; CaptureError if not a capture."""
    name = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            source = cast(io.RawIOBase, getattr(sys.stdin.buffer, "raw", sys.stdin.buffer))
            # a pipe may deliver the 24-byte file header in pieces: read it whole first, so the magic
            # and the header are judged on all of it, not on what the first read happened to bring
            raw = cast(BinaryIO, io.BufferedReader(_Prefixed(_read_up_to(source, 24), source), READ_SIZE))
        else:
            if not path:  # Path("") is the current directory
                raise CaptureError("''", "an empty file name (give a pcap/pcapng path, or - for stdin)")
            p = Path(path)
            if p.is_dir():
                raise CaptureError(path, "is a directory, not a capture file")
            raw = p.open("rb", buffering=READ_SIZE)
    except FileNotFoundError:
        raise CaptureError(path, "no such file") from None
    except PermissionError:
        raise CaptureError(path, "permission denied (try sudo, or check the file's mode)") from None
    except OSError as exc:
        raise CaptureError(path, f"cannot open: {exc.strerror or exc}") from None
    try:
        stream, compression = _decompressed(raw, name)
        decompressor = _UntilDamage(stream) if compression else None
        if decompressor is not None:
            stream = cast(BinaryIO, io.BufferedReader(decompressor, READ_SIZE))
        magic = _peek(stream, 24) if isinstance(stream, io.BufferedReader) else b""
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raw.close()
        raise CaptureError(name, f"cannot decompress: {_damage_text(exc)}") from None
    if decompressor is not None and decompressor.error is not None and len(magic) < 24:
        stream.close()
        raw.close()
        raise CaptureError(name, f"cannot decompress: {decompressor.error}")
    if magic[:4] == PCAPNG_SHB:
        cf = CaptureFile(name, "pcapng" + compression, stream, raw=raw if compression else None)
        cf.decompressor = decompressor
        return _located(cf, raw)
    if magic[:4] in PCAP_MAGICS:
        if len(magic) < 24:
            stream.close()
            raw.close()
            raise CaptureError(name, f"pcap file header cut short ({len(magic)} of 24 bytes)")
        endian, res = PCAP_MAGICS[magic[:4]]
        stream.read(24)
        (linktype,) = struct.unpack(endian + "I", magic[20:24])
        kind = "pcap-ns" if res == 1e-9 else "pcap"
        cf = CaptureFile(name, kind + compression, stream, raw=raw if compression else None)
        cf._endian, cf._tsres, cf._linktype = endian, res, linktype & 0x0FFFFFFF
        cf.decompressor = decompressor
        return _located(cf, raw)
    stream.close()
    raw.close()
    if not magic:
        raise CaptureError(name, "empty file, not a capture")
    raise CaptureError(
        name,
        f"not a pcap or pcapng capture (starts with {magic[:4].hex()}); "
        "save it from Wireshark/tcpdump as pcap or pcapng",
    )
