"""The NSS key log format: the secrets a TLS endpoint wrote down, looked up by client random.

One line per secret, ``LABEL <client_random hex> <secret hex>``, as written by browsers and
curl through ``SSLKEYLOGFILE``, by OpenSSL's keylog callback and by Python's
``SSLContext.keylog_filename``. The same text travels inside pcapng Decryption Secrets Blocks,
so the engine can :meth:`KeyLog.merge` those in. Lines that do not parse are counted and
skipped: a key log is a side file, and one bad line must not cost the others.
"""

from __future__ import annotations

import binascii
import os
from pathlib import Path

CLIENT_RANDOM = "CLIENT_RANDOM"
"""TLS ≤ 1.2: the 48-byte master secret."""
CLIENT_HANDSHAKE_TRAFFIC_SECRET = "CLIENT_HANDSHAKE_TRAFFIC_SECRET"  # noqa: S105 (a label, not a secret)
SERVER_HANDSHAKE_TRAFFIC_SECRET = "SERVER_HANDSHAKE_TRAFFIC_SECRET"  # noqa: S105 (a label, not a secret)
CLIENT_TRAFFIC_SECRET_0 = "CLIENT_TRAFFIC_SECRET_0"  # noqa: S105 (a label, not a secret)
SERVER_TRAFFIC_SECRET_0 = "SERVER_TRAFFIC_SECRET_0"  # noqa: S105 (a label, not a secret)
CLIENT_EARLY_TRAFFIC_SECRET = "CLIENT_EARLY_TRAFFIC_SECRET"  # noqa: S105 (a label, not a secret)
EXPORTER_SECRET = "EXPORTER_SECRET"  # noqa: S105 (a label, not a secret)

UTF8_BOM = b"\xef\xbb\xbf"
"""What an editor may put before the first line (tshark ignores it, so do we)."""

KNOWN_LABELS = frozenset(
    {
        CLIENT_RANDOM,
        CLIENT_HANDSHAKE_TRAFFIC_SECRET,
        SERVER_HANDSHAKE_TRAFFIC_SECRET,
        CLIENT_TRAFFIC_SECRET_0,
        SERVER_TRAFFIC_SECRET_0,
        CLIENT_EARLY_TRAFFIC_SECRET,
        EXPORTER_SECRET,
        "EARLY_EXPORTER_SECRET",
    }
)
"""Labels keyed by the 32-byte client random. ``RSA`` lines (keyed by encrypted premaster) are not."""


MAX_KEYLOG_BYTES = 64 << 20
"""A key log line is ~180 bytes: some 70,000 TLS 1.3 sessions (five lines each) fit; /dev/zero does not."""


class KeyLog:
    """Secrets by client random and label. Later lines win over earlier ones for the same key."""

    __slots__ = ("_secrets", "skipped_lines")

    def __init__(self) -> None:
        self._secrets: dict[bytes, dict[str, bytes]] = {}
        self.skipped_lines = 0
        """Lines that were neither comments, blank, nor a known label with two hex fields."""

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> KeyLog:
        """Read a key log file (the one place in mailtrace.tls that does I/O). ValueError when it is
        larger than any key log (``/dev/zero`` would fill the memory)."""
        with Path(path).open("rb") as f:
            data = f.read(MAX_KEYLOG_BYTES + 1)
        if len(data) > MAX_KEYLOG_BYTES:
            raise ValueError(f"larger than {MAX_KEYLOG_BYTES >> 20} MiB: that is no key log")
        return cls.from_text(data)

    @classmethod
    def from_text(cls, text: str | bytes) -> KeyLog:
        log = cls()
        log.add_text(text)
        return log

    def add_text(self, text: str | bytes) -> None:
        """Add the lines of ``text``; a pcapng Decryption Secrets Block holds exactly such text."""
        if isinstance(text, bytes):
            text = text.removeprefix(UTF8_BOM).decode("ascii", errors="replace")
        text = text.removeprefix("\ufeff")  # saved by Notepad / PowerShell: tshark reads such files too
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 3 or parts[0] not in KNOWN_LABELS:
                self.skipped_lines += 1
                continue
            try:
                client_random = binascii.unhexlify(parts[1])
                secret = binascii.unhexlify(parts[2])
            except (binascii.Error, ValueError):
                self.skipped_lines += 1
                continue
            if len(client_random) != 32 or not secret:
                self.skipped_lines += 1
                continue
            self._secrets.setdefault(client_random, {})[parts[0]] = secret

    def merge(self, other: KeyLog) -> None:
        """Take in every secret of ``other`` (its values win on conflicts)."""
        for client_random, secrets in other._secrets.items():
            self._secrets.setdefault(client_random, {}).update(secrets)
        self.skipped_lines += other.skipped_lines

    def get(self, client_random: bytes, label: str) -> bytes | None:
        entry = self._secrets.get(client_random)
        return None if entry is None else entry.get(label)

    def labels(self, client_random: bytes) -> frozenset[str]:
        """The labels known for one client random (empty when the session was not logged)."""
        return frozenset(self._secrets.get(client_random, {}))

    def __contains__(self, client_random: object) -> bool:
        return client_random in self._secrets

    def __len__(self) -> int:
        """Number of sessions (client randoms) with at least one secret."""
        return len(self._secrets)
