"""Cutting one direction's byte stream into TLS records (RFC 8446 §5.1), with loss recovery.

At most one record is buffered. When bytes are lost the reader knows, from the gap size, whether
the loss ended inside the record being read (then the next header is exactly where it should be)
or beyond it (then it scans for the next plausible header). Anything that does not look like
TLS is reported, never raised.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from mailtrace.tls.names import ALERT, APPLICATION_DATA, CHANGE_CIPHER_SPEC, HANDSHAKE, HEARTBEAT

_CONTENT_TYPES = frozenset({CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, HEARTBEAT})
HEADER_LEN = 5


@dataclass(frozen=True, slots=True)
class Record:
    """One complete TLS record as sent (still protected if the sender had keys in use)."""

    content_type: int
    """The outer content type."""
    version: int
    """The record-layer version (0x0301-0x0303 in practice)."""
    header: bytes
    """The 5 header bytes (the TLS 1.3 AEAD additional data)."""
    payload: bytes
    start: int = field(default=0, compare=False)
    """Stream offset of the header's first byte (bytes lost in gaps included)."""


class ProblemKind(enum.Enum):
    """Why bytes were not returned as records."""

    NOT_TLS = "not-tls"
    """The very first bytes are no TLS record header."""
    SSLV2 = "sslv2-hello"
    """An SSL 2.0-format ClientHello: not decoded."""
    BAD_HEADER = "bad-record-header"
    """A header in the middle of the stream does not parse; resynchronising."""
    OVERSIZE = "record-too-long"
    """A record's length exceeds ``max_record``; resynchronising."""
    SKIPPED = "resync-skipped"
    """Bytes thrown away while looking for the next record header."""


@dataclass(frozen=True, slots=True)
class Problem:
    """Bytes of the stream that are not (or no longer) a record."""

    kind: ProblemKind
    nbytes: int
    detail: str = ""


class _Mode(enum.Enum):
    RECORDS = "records"
    SKIP = "skip"
    """Discarding the known rest of a record that a gap cut."""
    SCAN = "scan"
    """Looking for a plausible record header."""
    DEAD = "dead"
    """Not TLS: count bytes, decode nothing."""


def plausible_header(data: bytes | bytearray, pos: int, max_record: int) -> bool:
    """A content type we know, major version 3, minor ≤ 4 and a length within bounds."""
    return (
        data[pos] in _CONTENT_TYPES
        and data[pos + 1] == 3
        and data[pos + 2] <= 4
        and 0 < int.from_bytes(data[pos + 3 : pos + 5], "big") <= max_record
    )


class RecordReader:
    """Turns the bytes of one direction into :class:`Record` and :class:`Problem` values."""

    __slots__ = ("_buf", "_consumed", "_mode", "_skip", "_started", "max_record")

    def __init__(self, max_record: int) -> None:
        self.max_record = max_record
        """Largest accepted record payload (2**14 + 2048 is the TLS limit for ciphertext)."""
        self._buf = bytearray()
        self._mode = _Mode.RECORDS
        self._skip = 0
        self._started = False
        self._consumed = 0

    @property
    def consumed(self) -> int:
        """Stream offset of the first byte not yet consumed (bytes lost in gaps included): the
        start of the buffered, incomplete record."""
        return self._consumed

    @property
    def skip_left(self) -> int:
        """Bytes of a record cut by a gap that are still to be skipped."""
        return self._skip if self._mode is _Mode.SKIP else 0

    @property
    def dead(self) -> bool:
        return self._mode is _Mode.DEAD

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Record | Problem]:
        out: list[Record | Problem] = []
        if self._mode is _Mode.DEAD:
            return out
        self._buf += data
        while True:
            if self._mode is _Mode.SKIP:
                take = min(self._skip, len(self._buf))
                del self._buf[:take]
                self._consumed += take
                self._skip -= take
                if self._skip:
                    return out
                self._mode = _Mode.RECORDS
            if self._mode is _Mode.SCAN and not self._scan(out):
                return out
            item = self._next_record()
            if item is None:
                return out
            out.append(item)
            if self._mode is _Mode.DEAD:
                return out

    def _next_record(self) -> Record | Problem | None:
        buf = self._buf
        if len(buf) < HEADER_LEN:
            if not self._started and buf and buf[0] & 0x80 and len(buf) >= 3 and buf[2] == 1:
                return self._die(ProblemKind.SSLV2, "SSL 2.0 record header")
            return None
        length = int.from_bytes(buf[3:5], "big")
        if not plausible_header(buf, 0, self.max_record):
            well_formed = buf[0] in _CONTENT_TYPES and buf[1] == 3 and buf[2] <= 4 and length > 0
            if not well_formed and not self._started:
                if buf[0] & 0x80 and buf[2] == 1:
                    return self._die(ProblemKind.SSLV2, "SSL 2.0 record header")
                return self._die(ProblemKind.NOT_TLS, f"stream starts with {bytes(buf[:16])!r}")
            kind = ProblemKind.OVERSIZE if well_formed else ProblemKind.BAD_HEADER
            detail = f"header {bytes(buf[:5]).hex()} (length {length})"
            del buf[:1]
            self._consumed += 1
            self._mode = _Mode.SCAN
            self._started = True
            return Problem(kind, 1, detail)
        if len(buf) < HEADER_LEN + length:
            return None
        header = bytes(buf[:HEADER_LEN])
        payload = bytes(buf[HEADER_LEN : HEADER_LEN + length])
        del buf[: HEADER_LEN + length]
        self._started = True
        start = self._consumed
        self._consumed += HEADER_LEN + length
        return Record(header[0], int.from_bytes(header[1:3], "big"), header, payload, start)

    def _die(self, kind: ProblemKind, detail: str) -> Problem:
        nbytes = len(self._buf)
        self._buf.clear()
        self._consumed += nbytes
        self._mode = _Mode.DEAD
        return Problem(kind, nbytes, detail)

    def _scan(self, out: list[Record | Problem]) -> bool:
        """Drop bytes up to the next plausible header; True once one is at the front."""
        buf = self._buf
        found = -1
        for i in range(len(buf) - HEADER_LEN + 1):
            if not plausible_header(buf, i, self.max_record):
                continue
            nxt = i + HEADER_LEN + int.from_bytes(buf[i + 3 : i + 5], "big")
            # Confirm with the following header when it is already here: ciphertext rarely
            # contains two plausible headers at exactly the right distance.
            if nxt + HEADER_LEN <= len(buf) and not plausible_header(buf, nxt, self.max_record):
                continue
            found = i
            break
        if found < 0:
            keep = min(len(buf), HEADER_LEN - 1)
            dropped = len(buf) - keep
            if dropped:
                del buf[:dropped]
                self._consumed += dropped
                out.append(Problem(ProblemKind.SKIPPED, dropped))
            return False
        if found:
            del buf[:found]
            self._consumed += found
            out.append(Problem(ProblemKind.SKIPPED, found))
        self._mode = _Mode.RECORDS
        return True

    def gap(self, nbytes: int) -> int | None:
        """Account for ``nbytes`` lost bytes (0 or less: unknown).

        Returns how many records were lost when that is certain (the loss ended inside the
        record being read, so the next header is exactly where it should be), else None: the
        reader then scans for the next plausible header.
        """
        if self._mode is _Mode.DEAD:
            return 0
        self._started = True
        self._consumed += len(self._buf) + max(0, nbytes)
        if self._mode is _Mode.SKIP and 0 < nbytes <= self._skip:
            self._skip -= nbytes
            if not self._skip:
                self._mode = _Mode.RECORDS
            return 0
        if self._mode is _Mode.RECORDS and len(self._buf) >= HEADER_LEN:
            rest = HEADER_LEN + int.from_bytes(self._buf[3:5], "big") - len(self._buf)
            self._buf.clear()
            if 0 < nbytes <= rest:
                self._skip = rest - nbytes
                self._mode = _Mode.SKIP if self._skip else _Mode.RECORDS
                return 1
        self._buf.clear()
        self._mode = _Mode.SCAN
        return None

    def eof(self) -> int:
        """The direction ended: the number of bytes of an incomplete record that are dropped."""
        nbytes = len(self._buf) if self._mode in (_Mode.RECORDS, _Mode.SCAN) else 0
        self._consumed += len(self._buf)
        self._buf.clear()
        return nbytes
