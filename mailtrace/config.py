"""Run-time configuration: ports, limits and switches, frozen once the command line is read."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailtrace.context.model import ContextLimits
from mailtrace.mime import MimeLimits
from mailtrace.protocols.base import DissectorLimits
from mailtrace.session import MessageSinkFactory, SessionLimits
from mailtrace.tcp.flows import FlowLimits


@dataclass(frozen=True, slots=True)
class PortRule:
    """What a server port speaks."""

    protocol: str
    implicit_tls: bool = False


DEFAULT_PORTS: dict[int, PortRule] = {
    25: PortRule("smtp"), 587: PortRule("smtp"), 2525: PortRule("smtp"), 465: PortRule("smtp", True),
    110: PortRule("pop3"), 995: PortRule("pop3", True),
    143: PortRule("imap"), 993: PortRule("imap", True),
}


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
    max_reorder_sessions: int = 10_000
    """Finished sessions held back so the report lists sessions in the order they started."""
    max_reorder_rows: int = 200_000
    """The same bound in packet rows (their memory): past either, a session is handed out early, so
    sessions are in start order as long as the buffer suffices and in end order beyond it."""
    message_sink: MessageSinkFactory | None = None
    """Receives every message's bytes as they stream (e.g. the HTML report's --embed-attachments)."""
    context: ContextLimits = field(default_factory=ContextLimits)
    context_enabled: bool = True
    """Decode DNS (UDP/TCP 53) and ident (TCP 113) and attribute it to the sessions (context rows)."""


def parse_port_rule(text: str) -> tuple[int, PortRule]:
    """``2526=smtp`` or ``4465=smtps`` → (2526, PortRule)."""
    port_text, sep, proto = text.partition("=")
    if not sep or not port_text.strip().isdigit():
        raise ValueError(f"expected PORT=PROTOCOL (e.g. 2526=smtp), got {text!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range")
    proto = proto.strip().lower()
    names = {"smtp": PortRule("smtp"), "pop3": PortRule("pop3"), "pop": PortRule("pop3"),
             "imap": PortRule("imap"), "smtps": PortRule("smtp", True), "pop3s": PortRule("pop3", True),
             "imaps": PortRule("imap", True)}
    if proto not in names:
        raise ValueError(f"unknown protocol {proto!r}: use smtp, pop3, imap, smtps, pop3s or imaps")
    return port, names[proto]
