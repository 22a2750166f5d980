"""Terminal view (interim): a plain Wireshark-style table per session."""

from __future__ import annotations

from typing import IO

from mailtrace.model import Command, Reply
from mailtrace.pipeline import CaptureStats
from mailtrace.session import Session


class TerminalRenderer:
    def __init__(self, stream: IO[str], *, show_secrets: bool = False) -> None:
        self.stream = stream
        self.show_secrets = show_secrets
        self.t0: float | None = None

    def session(self, s: Session) -> None:
        w = self.stream.write
        if self.t0 is None:
            self.t0 = s.start
        w(f"\n== session {s.id}: {s.protocol.upper()} {s.client} -> {s.server} (tcp.stream eq {s.stream}) "
          f"tls={s.tls} close={s.close} user={s.user}\n")
        for row in s.rows:
            info = []
            for e in row.events or []:
                if isinstance(e, Command):
                    info.append(f"C: {e.verb} {e.argument}".rstrip())
                elif isinstance(e, Reply):
                    info.append(f"S: {e.status} {e.text}")
                else:
                    info.append(type(e).__name__)
            w(f"{row.frame:6d} {row.phase.value:12s} {row.direction.value:6s} {row.payload_len:6d} "
              f"{'; '.join(info)[:160]}\n")

    def end(self, stats: CaptureStats, elapsed: float) -> None:
        self.stream.write(f"\n{stats.packets} packets, {stats.sessions} sessions, {elapsed:.2f}s\n")
