"""Rich tables for findings and statistics (text mode of ``analyze`` and ``stats``).

Two consumers compose with whatever session renderer runs: :class:`FindingsRenderer` (feeds a
:class:`~mailtrace.findings.FindingsCollector`, prints the findings after the sessions) and
:class:`StatsRenderer` (feeds a :class:`~mailtrace.stats.StatsCollector`, prints the tables).
The building blocks (:func:`findings_table`, :func:`stats_renderables`) take plain data, so other
front ends can reuse them (``Console(record=True).export_html()``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import IO, Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.segment import Segment, Segments
from rich.table import Table
from rich.text import Text

from mailtrace.findings import Finding, FindingsCollector, Severity
from mailtrace.pipeline import CaptureStats
from mailtrace.render.catalog import text as catalog_text
from mailtrace.render.output import Output
from mailtrace.session import Session
from mailtrace.stats import SMTP_CATEGORIES, SMTP_CLASSES, Statistics, StatsCollector, Summary

SEVERITY_STYLE = {
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
ORDER = (Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO)


UNWRAPPED = 10_000
"""The width a console is laid out for when nothing may wrap (stdout is not a terminal, no ``--width``)."""


def make_console(stream: IO[str], width: int | None = None, color: bool | None = None) -> Console:
    """A console on the stream; no colour unless the stream is a terminal (or ``color`` says so)."""
    return Console(
        file=stream,
        width=width,
        highlight=False,
        soft_wrap=False,
        force_terminal=color,
        no_color=color is False,
        emoji=False,
    )


def output_console(output: Output) -> Console:
    """A console that lays out as the text views of ``output`` do: ``--width`` (or the terminal's) when
    set, else never wrapping (piped); colour only when ``output`` has it (``--color``, ``NO_COLOR``)."""
    return make_console(output.stream, width=output.width or UNWRAPPED, color=output.color)


def print_unpadded(console: Console, renderable: RenderableType) -> None:
    """``console.print``, without the blanks that pad lines to the width of their table column.

    Laid out without wrapping (:data:`UNWRAPPED`), one long cell would otherwise pad every other line of
    its table with hundreds of trailing blanks."""
    segments: list[Segment] = []
    for line in console.render_lines(renderable, console.options, pad=False):
        while line and not line[-1].control and not line[-1].text.rstrip():
            line.pop()
        if line and not line[-1].control:
            last = line[-1]
            line[-1] = Segment(last.text.rstrip(), last.style, last.control)
        segments += line
        segments.append(Segment.line())
    console.print(Segments(segments))


# --------------------------------------------------------------------------- findings


def severity_word(severity: Severity, lang: str = "en") -> str:
    """The severity as the view's language says it (``medium``, ``mittel``); ids and JSON keep the value."""
    return catalog_text("severity." + severity.value, lang)


def severity_text(severity: Severity, lang: str = "en") -> Text:
    return Text(severity_word(severity, lang).upper(), style=SEVERITY_STYLE[severity])


def frames_text(frames: Sequence[int], limit: int = 6) -> str:
    shown = ", ".join(str(f) for f in frames[:limit])
    return shown + (f" +{len(frames) - limit}" if len(frames) > limit else "")


def findings_headline(counts: dict[str, int], dropped: int = 0, lang: str = "en") -> Text:
    text = Text(catalog_text("findings.headline", lang), style="bold")
    parts = [(f"{counts.get(s.value, 0)} {severity_word(s, lang)}", SEVERITY_STYLE[s])
             for s in ORDER if counts.get(s.value)]
    if not parts:
        text.append(catalog_text("findings.none", lang))
    for i, (label, style) in enumerate(parts):
        if i:
            text.append(", ")
        text.append(label, style=style)
    if dropped:
        text.append(" " + catalog_text("findings.dropped", lang, n=dropped), style="dim")
    return text


def limit_per_id(findings: Iterable[Finding], max_per_id: int | None) -> tuple[list[Finding], dict[str, int]]:
    """The findings shown (at most ``max_per_id`` of each id, in order) and how many of each id were not."""
    shown: list[Finding] = []
    per_id: dict[str, int] = {}
    omitted: dict[str, int] = {}
    for f in findings:
        n = per_id.get(f.id, 0)
        if max_per_id is not None and n >= max_per_id:
            omitted[f.id] = omitted.get(f.id, 0) + 1
            continue
        per_id[f.id] = n + 1
        shown.append(f)
    return shown, omitted


def finding_body(f: Finding, *, show_reference: bool = True, lang: str = "en") -> Text:
    """What the finding says, one part a line: title, where (id, session, frames), detail, reference."""
    body = Text()
    body.append(f.title, style="bold")  # a span: a style of the Text itself would cover every line
    where = f.id
    if f.session is not None:
        where += " · " + catalog_text("findings.session", lang, id=f.session)
    if f.frames:
        where += " · " + catalog_text("findings.frames", lang, n=len(f.frames), frames=frames_text(f.frames))
    body.append("\n" + where, style="magenta")
    body.append("\n" + f.detail)
    if show_reference and f.reference:
        body.append(f"\n{f.reference}", style="dim")
    return body


def more_text(id_: str, n: int, lang: str = "en") -> Text:
    return Text(catalog_text("findings.more", lang, n=n, id=id_), style="dim")


def findings_table(
    findings: Iterable[Finding], *, max_per_id: int | None = 20, show_reference: bool = True, lang: str = "en"
) -> tuple[Table, dict[str, int]]:
    """The findings (most severe first) as a two-column table that reads well at any width,
    and how many rows per id were left out."""
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1, 1, 0), expand=False)
    table.add_column("severity", no_wrap=True)
    table.add_column("finding", ratio=1, overflow="fold")  # wrap, and fold a long word: never cut with "…"
    shown, omitted = limit_per_id(findings, max_per_id)
    for f in shown:
        table.add_row(severity_text(f.severity, lang), finding_body(f, show_reference=show_reference, lang=lang))
    return table, omitted


def findings_renderable(collector: FindingsCollector, *, max_per_id: int | None = 20,
                        lang: str = "en") -> RenderableType:
    summary = collector.summary()
    findings = collector.findings()
    parts: list[RenderableType] = [Text(""), findings_headline(summary["by_severity"], collector.dropped, lang)]
    if findings:
        table, omitted = findings_table(findings, max_per_id=max_per_id, lang=lang)
        parts.append(table)
        for id_, n in sorted(omitted.items()):
            parts.append(more_text(id_, n, lang))
    return Group(*parts)


def severity_column(lang: str = "en") -> int:
    """The severity column of the text view: the longest label of the language (MEDIUM, NIEDRIG) and a blank."""
    return max(len(severity_word(s, lang)) for s in Severity) + 1


SEVERITY_COLUMN = severity_column()
"""The severity column of the English text view: the longest label (MEDIUM) and a blank."""


def write_findings(output: Output, collector: FindingsCollector, *, max_per_id: int | None = 20,
                   lang: str = "en") -> None:
    """The findings block of the text view, written as the session tables are: with a width (``--width``
    or the terminal's) each part wraps under itself beside the severity column; piped without one,
    every line is written whole (nothing wrapped, cut or padded). Headline, severities, the session and
    frame words and the "more" lines follow ``lang``; titles and details are the rules' own words."""
    output.write("")
    output.write(findings_headline(collector.summary()["by_severity"], collector.dropped, lang))
    shown, omitted = limit_per_id(collector.findings(), max_per_id)
    column = severity_column(lang)
    blank = Text(" " * column)
    for f in shown:
        label = Text()
        label.append_text(severity_text(f.severity, lang))  # as a span, so it does not colour the body too
        label.pad_right(column - label.cell_len)
        for i, line in enumerate(finding_body(f, lang=lang).split("\n")):
            output.cells(label if i == 0 else blank, line)
        output.write("")
    for id_, n in sorted(omitted.items()):
        output.paragraph(more_text(id_, n, lang))


class FindingsRenderer:
    """Session consumer: runs the findings rules, prints the findings at the end (:func:`write_findings`).

    ``feed=False``: the collector is fed elsewhere (once per session); this only prints.
    """

    def __init__(
        self, output: Output, collector: FindingsCollector, *, max_per_id: int | None = 20, feed: bool = True,
        lang: str = "en",
    ) -> None:
        self.output = output
        self.collector = collector
        self.max_per_id = max_per_id
        self.feed = feed
        self.lang = lang

    def session(self, session: Session) -> None:
        if self.feed:
            self.collector.session(session)

    def end(self, stats: CaptureStats, elapsed: float) -> None:
        self.collector.end(stats, elapsed)
        with self.output.block():
            write_findings(self.output, self.collector, max_per_id=self.max_per_id, lang=self.lang)


# --------------------------------------------------------------------------- statistics


def _table(title: str, *columns: str, right: Iterable[str] = ()) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    right_set = set(right)
    for column in columns:
        table.add_column(column, justify="right" if column in right_set else "left")
    return table


def _pct(part: float, whole: float) -> str:
    return f"{part / whole * 100:.1f} %" if whole else "-"


def _seconds(value: float) -> str:
    if value < 0.001:
        return f"{value * 1_000_000:.0f} µs"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def stats_renderables(stats: Statistics, *, top: int = 10) -> list[RenderableType]:
    """One table per section, in the order a report reads."""
    out: list[RenderableType] = []
    cap = stats.capture
    overview = _table("Capture", "", "value", right=["value"])
    for label, value in (
        ("files", ", ".join(cap.get("files") or []) or "-"),
        ("packets", cap.get("packets")),
        ("bytes", cap.get("bytes")),
        ("sessions", cap.get("sessions")),
        ("first packet (UTC)", _when(cap.get("start"))),
        ("last packet (UTC)", _when(cap.get("end"))),
        ("duration", _seconds(cap["duration"]) if cap.get("duration") is not None else "-"),
    ):
        overview.add_row(label, "-" if value is None else str(value))
    out.append(overview)

    total_packets = cap.get("packets") or 0
    hierarchy = _table(
        "Protocol hierarchy",
        "protocol",
        "packets",
        "% packets",
        "bytes",
        right=["packets", "% packets", "bytes"],
    )
    for h in stats.hierarchy:
        hierarchy.add_row(
            "  " * h.level + h.name,
            str(h.packets),
            _pct(h.packets, total_packets),
            "-" if h.bytes is None else _size(h.bytes),
        )
    out.append(hierarchy)
    out.append(Text("bytes: whole frames on the first line, TCP payload below it (UDP payload for dns (udp))",
                    style="dim"))

    protocols = _table(
        "Mail protocols",
        "protocol",
        "sessions",
        "packets",
        "payload",
        "TLS sessions",
        "TLS share",
        "decrypted",
        "IPv6",
        right=["sessions", "packets", "payload", "TLS sessions", "TLS share", "decrypted", "IPv6"],
    )
    for p in stats.protocols:
        protocols.add_row(
            p.protocol.upper(),
            str(p.sessions),
            str(p.packets),
            _size(p.payload_bytes),
            str(p.tls_sessions),
            f"{p.tls_share * 100:.1f} %",
            str(p.decrypted_sessions),
            str(p.ipv6_sessions),
        )
    out.append(protocols)

    peers = _table(
        f"Top servers and clients (top {top})",
        "server",
        "protocol",
        "sessions",
        "client",
        "sessions ",
        right=["sessions", "sessions "],
    )
    for i in range(max(len(stats.servers), len(stats.clients))):
        server = stats.servers[i] if i < len(stats.servers) else ("", "", "")
        client = stats.clients[i] if i < len(stats.clients) else ("", "")
        peers.add_row(server[0], server[1].upper(), str(server[2]), client[0], str(client[1]))
    out.append(peers)

    if stats.commands:
        commands = _table("Commands", "protocol", "command", "count", right=["count"])
        for protocol, verbs in stats.commands.items():
            for i, (verb, n) in enumerate(verbs.items()):
                commands.add_row(protocol.upper() if i == 0 else "", verb, str(n))
        out.append(commands)

    codes = stats.smtp_replies.get("codes", {})
    if codes:
        out.append(smtp_reply_matrix(codes))
        enhanced = stats.smtp_replies.get("enhanced", {})
        if enhanced:
            table = _table("SMTP enhanced status codes (RFC 3463)", "code", "count", right=["count"])
            for code, n in enhanced.items():
                table.add_row(code, str(n))
            out.append(table)
    responses = _table("POP3 / IMAP responses", "protocol", "status", "count", right=["count"])
    for status, n in stats.pop3_responses.items():
        responses.add_row("POP3", status, str(n))
    for group in ("tagged", "continuation", "untagged"):
        for status, n in stats.imap_responses.get(group, {}).items():
            responses.add_row(
                "IMAP", f"{status} ({group})" if group != "continuation" else "+ (continuation)", str(n)
            )
    if responses.row_count:
        out.append(responses)

    out.append(_messages_table(stats.messages))
    auth = stats.auth
    if auth.get("attempts"):
        table = _table("Logins", "", "value", right=["value"])
        table.add_row("attempts", str(auth["attempts"]))
        for outcome, n in auth.get("outcomes", {}).items():
            table.add_row(f"  {outcome}", str(n))
        table.add_row("in cleartext", str(auth.get("cleartext", 0)))
        for mech, n in auth.get("mechanisms", {}).items():
            table.add_row(f"mechanism {mech}", str(n))
        for user, n in auth.get("users", []):
            table.add_row(f"user {user}", str(n))
        out.append(table)

    addresses = stats.addresses
    if any(addresses.values()):
        table = _table(
            f"Top addresses (top {top})",
            "senders (MAIL FROM)",
            "n",
            "recipients (RCPT TO)",
            "n ",
            "sender domains",
            "n  ",
            "recipient domains",
            "n   ",
            right=["n", "n ", "n  ", "n   "],
        )
        columns = [
            addresses.get(k, []) for k in ("senders", "recipients", "sender_domains", "recipient_domains")
        ]
        for i in range(max(len(c) for c in columns)):
            cells: list[str] = []
            for column in columns:
                cells += [column[i][0], str(column[i][1])] if i < len(column) else ["", ""]
            table.add_row(*cells)
        out.append(table)

    timing = _table(
        "Session durations and reply latency",
        "protocol",
        "what",
        "count",
        "median",
        "p95",
        "max",
        right=["count", "median", "p95", "max"],
    )
    for protocol, duration in stats.durations.items():
        _timing_row(timing, protocol.upper(), "session duration", duration)
    for protocol, by_verb in stats.latency.items():
        for verb, latency in by_verb.items():
            _timing_row(
                timing, protocol.upper(), f"{'end of data' if verb == '.' else verb} → reply", latency
            )
    if timing.row_count:
        out.append(timing)

    timeline = stats.timeline
    counts: list[int] = timeline.get("counts", [])
    if counts:
        table = _table(
            f"Sessions over time ({timeline['bucket_seconds']} s buckets)",
            "from (UTC)",
            "sessions",
            "",
            right=["sessions"],
        )
        peak = max(counts) or 1
        for i, n in enumerate(counts):
            start = timeline["start"] + i * timeline["bucket_seconds"]
            table.add_row(_when(start), str(n), "█" * max(1 if n else 0, round(n / peak * 40)))
        out.append(table)

    spam = stats.spam
    table = _table("Spam defences", "", "value", right=["value"])
    table.add_row("messages with verdict headers", str(spam.get("messages_with_verdicts", 0)))
    for key in ("spf", "dkim", "dmarc", "arc"):
        for result, n in spam.get(key, {}).items():
            table.add_row(f"{key.upper()} {result}", str(n))
    for domain, n in spam.get("dkim_domains", []):
        table.add_row(f"DKIM signed by {domain}", str(n))
    table.add_row("flagged as spam by a filter", str(spam.get("spam_flagged", 0)))
    for category, n in spam.get("rejections", {}).items():
        table.add_row(f"refused: {category}", str(n))
    table.add_row("relaying refused", str(spam.get("relay_denied", 0)))
    table.add_row("RCPT refused as unknown user", str(spam.get("unknown_recipients", 0)))
    table.add_row("RCPT deferred (450/451, greylisting?)", str(spam.get("greylist_deferrals", 0)))
    greylisting = spam.get("greylisting")
    if isinstance(greylisting, dict):
        table.add_row("greylisted, retried later and accepted", str(greylisting.get("retried_accepted", 0)))
        table.add_row("greylisted, no retry in the capture", str(greylisting.get("not_retried", 0)))
    dnsbl = spam.get("dnsbl")
    if isinstance(dnsbl, dict):
        table.add_row("DNS blocklist look-ups", str(dnsbl.get("lookups", 0)))
        for key, label in (("listed", "listed (127.0.0.x)"), ("not_listed", "not listed (NXDOMAIN)"),
                           ("unanswered", "no answer seen"), ("other", "other answer (error, no 127.0.0.x)")):
            if dnsbl.get(key) or key in ("listed", "not_listed"):
                table.add_row(f"  {label}", str(dnsbl.get(key, 0)))
        zones: dict[str, Any] = dnsbl.get("by_zone") or {}
        for zone, per_zone in list(zones.items())[:top]:
            table.add_row(Text(f"  on {zone}"), f"{per_zone.get('lookups', 0)} ({per_zone.get('listed', 0)} listed)")
    out.append(table)

    findings = stats.extra.get("findings")
    if isinstance(findings, dict) and findings.get("by_id"):
        table = _table("Findings", "finding", *[s.value for s in ORDER], right=[s.value for s in ORDER])
        for id_, per in findings["by_id"].items():
            table.add_row(id_, *[str(per.get(s.value, "")) for s in ORDER])
        out.append(table)
    if stats.approximate:
        out.append(
            Text(
                "approximate (too many distinct values to count exactly): " + ", ".join(stats.approximate),
                style="dim",
            )
        )
    return out


def smtp_reply_matrix(codes: dict[str, int]) -> Table:
    """SMTP replies by class (first digit) and category (second digit), as RFC 5321 §4.2.1 teaches."""
    categories = sorted({c[1] for c in codes if len(c) == 3})
    table = Table(
        title="SMTP replies by class and category (RFC 5321 §4.2.1)",
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("class")
    for d in categories:
        table.add_column(f"x{d}z\n{SMTP_CATEGORIES.get(d, '?')}", justify="right")
    table.add_column("total", justify="right")
    table.add_column("codes")
    for first in sorted({c[0] for c in codes if len(c) == 3}):
        row = [f"{first}yz {SMTP_CLASSES.get(first, '?')}"]
        total = 0
        for d in categories:
            n = sum(v for c, v in codes.items() if c[:2] == first + d)
            total += n
            row.append(str(n) if n else "")
        row.append(str(total))
        row.append(" ".join(f"{c}×{v}" for c, v in sorted(codes.items()) if c[0] == first))
        table.add_row(*row)
    return table


def _timing_row(table: Table, protocol: str, what: str, s: Summary) -> None:
    table.add_row(protocol, what, str(s.count), _seconds(s.median), _seconds(s.p95), _seconds(s.max))


def _messages_table(messages: dict[str, Any]) -> Table:
    table = _table("Messages and attachments", "", "value", right=["value"])
    table.add_row("messages", str(messages.get("count", 0)))
    table.add_row("  complete", str(messages.get("complete", 0)))
    for origin, n in messages.get("by_origin", {}).items():
        table.add_row(f"  {origin}", str(n))
    size = messages.get("size")
    if size:
        table.add_row(
            "size median / p95 / max",
            f"{_size(size['median'])} / {_size(size['p95'])} / {_size(size['max'])}",
        )
    attachments = messages.get("attachments", {})
    table.add_row("attachments", str(attachments.get("count", 0)))
    if attachments.get("count"):
        table.add_row("  decoded bytes", _size(attachments.get("bytes", 0)))
        for ctype, n in attachments.get("types", {}).items():
            table.add_row(f"  {ctype}", str(n))
    b64 = messages.get("base64")
    if b64:
        table.add_row("base64 parts", str(b64["parts"]))
        table.add_row("  encoded / decoded", f"{_size(b64['encoded_bytes'])} / {_size(b64['decoded_bytes'])}")
        table.add_row("  overhead", f"{_size(b64['overhead_bytes'])} ({b64['overhead_percent']} %)")
    return table


class StatsRenderer:
    """Session consumer: counts, then prints the statistics tables (``feed=False``: counted elsewhere)."""

    def __init__(
        self,
        console: Console,
        collector: StatsCollector,
        *,
        findings: FindingsCollector | None = None,
        feed: bool = True,
    ) -> None:
        self.console = console
        self.collector = collector
        self.findings = findings
        self.feed = feed

    def session(self, session: Session) -> None:
        if self.feed:
            self.collector.session(session)

    def end(self, stats: CaptureStats, elapsed: float) -> None:
        self.collector.end(stats, elapsed)
        result = self.collector.result()
        if self.findings is not None:
            result.extra["findings"] = self.findings.summary()
        for renderable in stats_renderables(result, top=self.collector.limits.top):
            print_unpadded(self.console, renderable)
