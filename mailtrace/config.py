"""Run-time configuration: ports, limits and switches, frozen once the command line is read."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailtrace.context.model import ContextLimits
from mailtrace.mime import MimeLimits
from mailtrace.numbers import is_count
from mailtrace.protocols import REGISTRY
from mailtrace.protocols.base import DissectorLimits
from mailtrace.session import MessageSinkFactory, SessionLimits
from mailtrace.tcp.flows import FlowLimits


@dataclass(frozen=True, slots=True)
class PortRule:
    """What a server port speaks."""

    protocol: str
    implicit_tls: bool = False


DEFAULT_PORTS: dict[int, PortRule] = {
    **{port: PortRule(cls.name) for cls in REGISTRY for port in sorted(cls.default_ports)},
    **{port: PortRule(cls.name, True) for cls in REGISTRY for port in sorted(cls.tls_ports)},
}
"""Each dissector's own ports (SMTP 25/587/2525 and 465, POP3 110 and 995, IMAP 143 and 993)."""
PORT_PROTOCOL_NAMES: dict[str, PortRule] = {
    **{cls.name: PortRule(cls.name) for cls in REGISTRY},
    **{cls.name + "s": PortRule(cls.name, True) for cls in REGISTRY},
    "pop": PortRule("pop3"),
}
"""What ``--port PORT=NAME`` accepts: a protocol, the same with an ``s`` for implicit TLS."""


@dataclass(frozen=True)
class Config:
    """Everything a run needs to know; built by the CLI, read by the pipeline."""

    ports: dict[int, PortRule] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    sniff_other_ports: bool = True
    """Look at the first bytes of connections on other ports for SMTP/POP3/IMAP and proxy tunnels."""
    show_secrets: bool = False
    flow: FlowLimits = field(default_factory=FlowLimits)
    dissector: DissectorLimits = field(default_factory=DissectorLimits)
    session: SessionLimits = field(default_factory=SessionLimits)
    mime: MimeLimits = field(default_factory=MimeLimits)
    max_sniff_bytes: int = 4096
    """Bytes per direction looked at before an unknown-port connection is judged not to be mail."""
    max_reorder_sessions: int = 1_000
    """Finished sessions held back so the report lists sessions in the order they started (behind a
    session that is still open: an IMAP IDLE open for the whole capture holds back every later one)."""
    max_reorder_rows: int = 50_000
    """The same bound in packet rows: past either, a session is handed out early, so sessions are in
    start order as long as the buffer suffices and in end order beyond it. A held session costs the
    dissecting process 13-17 KB (an SMTP session of 22 packets, in the JSON or the text report): at
    10,000 and 200,000, a capture of 12,000 such sessions behind one long one peaked at 204 MiB; at
    these bounds 71 MiB (JSON) and 107 MiB (text). The benchmark holds at most ~450 sessions and ~10,000
    rows, a 1 GB capture of 9,700 sessions 358 and 35,000: their reports are in start order."""
    message_sink: MessageSinkFactory | None = None
    """Receives every message's bytes as they stream (e.g. the HTML report's --embed-attachments)."""
    summarize: bool = True
    """False: sessions carry empty message summaries (only complete and missing_bytes are true) and the
    bytes go only to the message sink, which summarises them elsewhere (mailtrace/forked.py)."""
    context: ContextLimits = field(default_factory=ContextLimits)
    context_enabled: bool = True
    """Decode DNS (UDP/TCP 53) and ident (TCP 113) and attribute it to the sessions (context rows)."""


def parse_port_rule(text: str) -> tuple[int, PortRule]:
    """``2526=smtp`` or ``4465=smtps`` → (2526, PortRule)."""
    port_text, sep, proto = text.partition("=")
    if not sep or not is_count(port_text.strip(), 5):
        raise ValueError(f"expected PORT=PROTOCOL (e.g. 2526=smtp), got {text!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range")
    proto = proto.strip().lower()
    if proto not in PORT_PROTOCOL_NAMES:
        known = [name for name in PORT_PROTOCOL_NAMES if name != "pop"]
        raise ValueError(f"unknown protocol {proto!r}: use {', '.join(known[:-1])} or {known[-1]}")
    return port, PORT_PROTOCOL_NAMES[proto]
