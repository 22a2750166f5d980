"""Writing captured frames to a classic pcap file (``live --write``), readable by mailtrace and tshark."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import dpkt

from mailtrace.capture.reader import Frame


class PcapWriteError(OSError):
    """The file cannot be created or written; the message names the option and the file."""


class PcapWriter:
    """Appends frames to a microsecond pcap file of one link type; ``flush()`` makes it readable so far."""

    def __init__(self, path: str, linktype: int, snaplen: int) -> None:
        self.path = path
        self.frames = 0
        try:
            self._file: BinaryIO = Path(path).open("wb")  # noqa: SIM115 - closed by close()
            self._writer = dpkt.pcap.Writer(self._file, snaplen=snaplen, linktype=linktype)
        except OSError as exc:
            raise PcapWriteError(f"--write {path}: {exc.strerror or exc}") from None

    def write(self, frame: Frame) -> None:
        # Timestamps are whole microseconds already (the capture cuts them), so dpkt's rounding is exact.
        try:
            ts, _linktype, data, _wire_len = frame
            self._writer.writepkt_time(data, ts)
        except OSError as exc:
            raise PcapWriteError(f"--write {self.path}: {exc.strerror or exc}") from None
        self.frames += 1

    def flush(self) -> None:
        try:
            self._file.flush()
        except OSError as exc:
            raise PcapWriteError(f"--write {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as exc:
            raise PcapWriteError(f"--write {self.path}: {exc.strerror or exc}") from None
