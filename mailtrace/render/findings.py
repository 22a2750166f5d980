"""Rich tables for findings and statistics (text mode of ``analyze`` and ``stats``).

Two consumers compose with whatever session renderer runs: :class:`FindingsRenderer` (feeds a
:class:`~mailtrace.findings.FindingsCollector`, prints the findings after the sessions) and
:class:`StatsRenderer` (feeds a :class:`~mailtrace.stats.StatsCollector`, prints the tables).
The building blocks (:func:`findings_table`, :func:`stats_renderables`) take plain data, so other
front ends can reuse them (``Console(record=True).export_html()``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import IO, Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.segment import Segment, Segments
from rich.table import Table
from rich.text import Text

from mailtrace.findings import Finding, FindingsCollector, Severity
from mailtrace.pipeline import CaptureStats
from mailtrace.render.catalog import fmt_num, localize_number
from mailtrace.render.catalog import has as catalog_has
from mailtrace.render.catalog import text as catalog_text
from mailtrace.render.catalog import words as catalog_words
from mailtrace.render.output import Output, clean, utc
from mailtrace.session import Session
from mailtrace.stats import Statistics, StatsCollector, Summary

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
                   lang: str = "en", first: bool = False) -> None:
    """The findings block of the text view, written as the session tables are: with a width (``--width``
    or the terminal's) each part wraps under itself beside the severity column; piped without one,
    every line is written whole (nothing wrapped, cut or padded). Headline, severities, the session and
    frame words and the "more" lines follow ``lang``; titles and details are the rules' own words.
    ``first``: nothing was written before it (``--findings-only``), so no blank line sets it off."""
    if not first:
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
        lang: str = "en", first: bool = False,
    ) -> None:
        self.output = output
        self.collector = collector
        self.max_per_id = max_per_id
        self.feed = feed
        self.lang = lang
        self.first = first
        """Nothing is written before the findings (``--findings-only``)."""

    def session(self, session: Session) -> None:
        if self.feed:
            self.collector.session(session)

    def end(self, stats: CaptureStats, elapsed: float) -> None:
        self.collector.end(stats, elapsed)
        with self.output.block():
            write_findings(self.output, self.collector, max_per_id=self.max_per_id, lang=self.lang, first=self.first)


# --------------------------------------------------------------------------- statistics
#
# Every word of these tables comes from the catalogue (``stats.*``, and the ``st.*``/``html.st.*``
# keys the HTML report shares where the words are the same). Counts group their thousands as the language
# writes them (28,450; in German 28.450, and decimals 0,093 s). Protocol names, commands, reply codes and
# values from the capture stay as they are.


class _CleanTable(Table):
    """A statistics table: its text cells hold user names, addresses, commands and header values from the
    capture, so each goes through :func:`~mailtrace.render.output.clean` (an ESC or a bidi override from
    a capture must never reach the terminal)."""

    def add_row(self, *renderables: RenderableType | None, **kwargs: Any) -> None:
        super().add_row(*(_clean_cell(r) for r in renderables), **kwargs)


def _clean_cell(cell: RenderableType | None) -> RenderableType | None:
    if isinstance(cell, str):  # a Text, so Rich reads no markup in it ("[/bold]" from a capture raised)
        return Text(clean(cell))
    if isinstance(cell, Text) and clean(cell.plain) != cell.plain:  # one for one: the spans stay right
        return Text(clean(cell.plain), style=cell.style, spans=cell.spans)
    return cell


def _table(title: str, *columns: str, right: Iterable[str] = ()) -> Table:
    table = _CleanTable(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                        pad_edge=False, min_width=len(title) + 1)  # a narrow table must not wrap its title
    right_set = set(right)
    for column in columns:
        table.add_column(column, justify="right" if column in right_set else "left")
    return table


def _file_label(name: str, cap: dict[str, Any], lang: str) -> str:
    """A file of the capture row; one that could not be read says why (``ui.unreadable``)."""
    error = next((u["error"] for u in cap.get("unreadable") or () if u.get("name") == name), None)
    return name if error is None else catalog_text("ui.unreadable", lang, name=name, error=error)


def _num(value: float, spec: str, lang: str) -> str:
    """``format(value, spec)``: unchanged in English, thousands grouped and separators localised otherwise."""
    if lang == "en":
        return format(value, spec)
    return localize_number(format(value, "," + spec), lang)


def _count(value: Any, lang: str = "en") -> str:
    """A count (or any other value) for a cell, its thousands grouped: ``28,450``; ``28.450`` in German."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return fmt_num(value, lang)


def _pct(part: float, whole: float, lang: str = "en") -> str:
    return _num(part / whole * 100, ".1f", lang) + " %" if whole else "-"


def _seconds(value: float, lang: str = "en") -> str:
    if value < 0.001:
        return _num(value * 1_000_000, ".0f", lang) + " µs"
    if value < 1:
        return _num(value * 1000, ".1f", lang) + " ms"
    return _num(value, ".2f", lang) + " s"


def _size(n: float, lang: str = "en") -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{_num(n, '.0f', lang)} {unit}" if unit == "B" else f"{_num(n, '.1f', lang)} {unit}"
        n /= 1024
    return f"{_num(n, '.1f', lang)} GiB"


def _when(ts: float | None) -> str:
    return "-" if ts is None else utc(ts, millis=False)


def _optional(key: str, fallback: str, lang: str, **params: Any) -> str:
    """The catalogue's words for ``key`` when it has them, else ``fallback`` (a value from the capture)."""
    return catalog_text(key, lang, **params) if catalog_has(key, lang) else fallback


def stats_renderables(stats: Statistics, *, top: int = 10, lang: str = "en") -> list[RenderableType]:
    """One table per section, in the order a report reads; the words follow ``lang``."""
    t = catalog_words(lang)
    out: list[RenderableType] = []
    cap = stats.capture
    value_col = t("stats.value")
    overview = _table(t("stats.capture"), "", value_col, right=[value_col])
    duration = cap.get("duration")
    for label, value in (
        (t("stats.files"), ", ".join(_file_label(name, cap, lang) for name in cap.get("files") or []) or "-"),
        (t("stats.packets"), cap.get("packets")),
        (t("stats.bytes"), cap.get("bytes")),
        (t("stats.sessions"), cap.get("sessions")),
        (t("stats.first_packet"), _when(cap.get("start"))),
        (t("stats.last_packet"), _when(cap.get("end"))),
        (t("stats.duration"), _seconds(duration, lang) if duration is not None else "-"),
    ):
        overview.add_row(label, "-" if value is None else _count(value, lang))
    out.append(overview)

    total_packets = cap.get("packets") or 0
    protocol_col, packets_col, pct_col, bytes_col = (
        t("stats.protocol"), t("stats.packets"), t("stats.pct_packets"), t("stats.bytes"))
    hierarchy = _table(
        t("html.st.hierarchy"),
        protocol_col,
        packets_col,
        pct_col,
        bytes_col,
        right=[packets_col, pct_col, bytes_col],
    )
    for h in stats.hierarchy:
        hierarchy.add_row(
            "  " * h.level + _optional("stats.hierarchy." + h.name.replace(" ", "_"), h.name, lang),
            _count(h.packets, lang),
            _pct(h.packets, total_packets, lang),
            "-" if h.bytes is None else _size(h.bytes, lang),
        )
    out.append(hierarchy)
    out.append(Text(t("stats.bytes_note") + "\n", style="dim"))  # a blank line before the next heading

    numbers = [t("stats.sessions"), packets_col, t("stats.payload"), t("stats.tls_sessions"),
               t("html.st.tls_share"), t("stats.decrypted"), "IPv6"]
    protocols = _table(t("stats.mail_protocols"), protocol_col, *numbers, right=numbers)
    for p in stats.protocols:
        protocols.add_row(
            p.protocol.upper(),
            _count(p.sessions, lang),
            _count(p.packets, lang),
            _size(p.payload_bytes, lang),
            _count(p.tls_sessions, lang),
            _num(p.tls_share * 100, ".1f", lang) + " %",
            _count(p.decrypted_sessions, lang),
            _count(p.ipv6_sessions, lang),
        )
    out.append(protocols)

    sessions_col = t("stats.sessions")
    # two tables: a server and a client on one row would read as a pair that talked to each other
    servers = _table(t("stats.servers", top=_count(top, lang)), t("stats.server"), protocol_col, sessions_col,
                     right=[sessions_col])
    for address, protocol, n in stats.servers:
        servers.add_row(address, protocol.upper(), _count(n, lang))
    out.append(servers)
    clients = _table(t("stats.clients", top=_count(top, lang)), t("stats.client"), sessions_col,
                     right=[sessions_col])
    for address, n in stats.clients:
        clients.add_row(address, _count(n, lang))
    out.append(clients)

    count_col = t("stats.count")
    if stats.commands:
        commands = _table(t("html.st.commands"), protocol_col, t("stats.command"), count_col, right=[count_col])
        for protocol, verbs in stats.commands.items():
            for i, (verb, n) in enumerate(verbs.items()):
                commands.add_row(protocol.upper() if i == 0 else "", verb, _count(n, lang))
        out.append(commands)

    codes = stats.smtp_replies.get("codes", {})
    if codes:
        out.append(smtp_reply_matrix(codes, lang))
        enhanced = stats.smtp_replies.get("enhanced", {})
        if enhanced:
            table = _table(t("stats.enhanced"), t("stats.code"), count_col, right=[count_col])
            for code, n in enhanced.items():
                table.add_row(code, _count(n, lang))
            out.append(table)
    responses = _table(t("stats.responses"), protocol_col, t("stats.status"), count_col, right=[count_col])
    for status, n in stats.pop3_responses.items():
        responses.add_row("POP3", status, _count(n, lang))
    for group in ("tagged", "continuation", "untagged"):
        for status, n in stats.imap_responses.get(group, {}).items():
            responses.add_row(
                "IMAP", f"{status} {t('st.' + group)}" if group != "continuation" else t("stats.continuation"),
                _count(n, lang),
            )
    if responses.row_count:
        out.append(responses)

    out.append(_messages_table(stats.messages, lang))
    auth = stats.auth
    if auth.get("attempts"):
        table = _table(t("html.st.logins"), "", value_col, right=[value_col])
        table.add_row(t("stats.attempts"), _count(auth["attempts"], lang))
        for outcome, n in auth.get("outcomes", {}).items():
            table.add_row(f"  {_optional('stats.outcome.' + outcome, outcome, lang)}", _count(n, lang))
        table.add_row(t("stats.cleartext"), _count(auth.get("cleartext", 0), lang))
        for mech, n in auth.get("mechanisms", {}).items():
            table.add_row(t("stats.mechanism", mechanism=mech), _count(n, lang))
        for user, n in auth.get("users", []):
            table.add_row(t("stats.user", user=user), _count(n, lang))
        out.append(table)

    addresses = stats.addresses
    if any(addresses.values()):
        table = _table(
            t("stats.addresses", top=_count(top, lang)),
            t("stats.senders"),
            "n",
            t("stats.recipients"),
            "n ",
            t("stats.sender_domains"),
            "n  ",
            t("stats.recipient_domains"),
            "n   ",
            right=["n", "n ", "n  ", "n   "],
        )
        columns = [
            addresses.get(k, []) for k in ("senders", "recipients", "sender_domains", "recipient_domains")
        ]
        for i in range(max(len(c) for c in columns)):
            cells: list[str] = []
            for column in columns:
                cells += [column[i][0], _count(column[i][1], lang)] if i < len(column) else ["", ""]
            table.add_row(*cells)
        out.append(table)

    spread = [count_col, t("stats.median"), "p95", t("stats.max")]
    timing = _table(t("stats.timing"), protocol_col, t("stats.what"), *spread, right=spread)
    for protocol, duration_summary in stats.durations.items():
        _timing_row(timing, protocol.upper(), t("stats.session_duration"), duration_summary, lang)
    for protocol, by_verb in stats.latency.items():
        for verb, latency in by_verb.items():
            what = t("st.end_of_data") if verb == "." else verb
            _timing_row(timing, protocol.upper(), t("stats.latency_row", what=what), latency, lang)
    if timing.row_count:
        out.append(timing)

    timeline = stats.timeline
    counts: list[int] = timeline.get("counts", [])
    if counts:
        table = _table(
            t("stats.timeline", seconds=_count(timeline["bucket_seconds"], lang)),
            t("stats.from"),
            sessions_col,
            "",
            right=[sessions_col],
        )
        peak = max(counts) or 1
        for i, n in enumerate(counts):
            start = timeline["start"] + i * timeline["bucket_seconds"]
            table.add_row(_when(start), _count(n, lang), "█" * max(1 if n else 0, round(n / peak * 40)))
        out.append(table)

    out.append(_spam_table(stats.spam, top, lang))

    findings = stats.extra.get("findings")
    if isinstance(findings, dict) and findings.get("by_id"):
        severities = [severity_word(s, lang) for s in ORDER]
        table = _table(t("stats.findings"), t("stats.finding"), *severities, right=severities)
        for id_, per in findings["by_id"].items():
            table.add_row(id_, *[_count(per.get(s.value, ""), lang) for s in ORDER])
        out.append(table)
    if stats.approximate:
        out.append(Text(t("stats.approximate", names=", ".join(stats.approximate)), style="dim"))
    return out


def _spam_table(spam: dict[str, Any], top: int, lang: str) -> Table:
    t = catalog_words(lang)
    value_col = t("stats.value")
    table = _table(t("html.st.spam"), "", value_col, right=[value_col])
    table.add_row(t("st.spam.verdicts"), _count(spam.get("messages_with_verdicts", 0), lang))
    for key in ("spf", "dkim", "dmarc", "arc"):
        for result, n in spam.get(key, {}).items():
            table.add_row(f"{key.upper()} {result}", _count(n, lang))
    for domain, n in spam.get("dkim_domains", []):
        table.add_row(t("st.spam.dkim_signed", domain=domain), _count(n, lang))
    table.add_row(t("st.spam.flagged"), _count(spam.get("spam_flagged", 0), lang))
    for category, n in spam.get("rejections", {}).items():
        table.add_row(t("st.spam.refused", category=category), _count(n, lang))
    table.add_row(t("st.spam.relay"), _count(spam.get("relay_denied", 0), lang))
    table.add_row(t("st.spam.unknown"), _count(spam.get("unknown_recipients", 0), lang))
    table.add_row(t("st.spam.deferred"), _count(spam.get("greylist_deferrals", 0), lang))
    greylisting = spam.get("greylisting")
    if isinstance(greylisting, dict):
        table.add_row(t("st.spam.grey_retried"), _count(greylisting.get("retried_accepted", 0), lang))
        table.add_row(t("st.spam.grey_not"), _count(greylisting.get("not_retried", 0), lang))
    dnsbl = spam.get("dnsbl")
    if isinstance(dnsbl, dict):
        table.add_row(t("st.spam.dnsbl"), _count(dnsbl.get("lookups", 0), lang))
        for key in ("listed", "not_listed", "unanswered", "other"):
            if dnsbl.get(key) or key in ("listed", "not_listed"):
                table.add_row(f"  {t('stats.dnsbl.' + key)}", _count(dnsbl.get(key, 0), lang))
        zones: dict[str, Any] = dnsbl.get("by_zone") or {}
        for zone, per_zone in list(zones.items())[:top]:
            table.add_row(
                Text("  " + t("stats.dnsbl.zone", zone=zone)),
                t("st.spam.zone_value", lookups=_count(per_zone.get("lookups", 0), lang),
                  listed=_count(per_zone.get("listed", 0), lang)),
            )
    return table


def smtp_reply_matrix(codes: dict[str, int], lang: str = "en") -> Table:
    """SMTP replies by class (first digit) and category (second digit), as RFC 5321 §4.2.1 teaches."""
    t = catalog_words(lang)
    categories = sorted({c[1] for c in codes if len(c) == 3})
    table = _CleanTable(
        title=t("stats.replies"),
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column(t("stats.class"))
    for d in categories:
        table.add_column(f"x{d}z\n{_optional('stats.category.' + d, '?', lang)}", justify="right")
    table.add_column(t("stats.total"), justify="right")
    table.add_column(t("stats.codes"))
    for first in sorted({c[0] for c in codes if len(c) == 3}):
        row = [f"{first}yz {_optional('stats.class.' + first, '?', lang)}"]
        total = 0
        for d in categories:
            n = sum(v for c, v in codes.items() if c[:2] == first + d)
            total += n
            row.append(_count(n, lang) if n else "")
        row.append(_count(total, lang))
        row.append(" ".join(f"{c}×{_count(v, lang)}" for c, v in sorted(codes.items()) if c[0] == first))
        table.add_row(*row)
    return table


def _timing_row(table: Table, protocol: str, what: str, s: Summary, lang: str = "en") -> None:
    table.add_row(protocol, what, _count(s.count, lang), _seconds(s.median, lang), _seconds(s.p95, lang),
                  _seconds(s.max, lang))


def _messages_table(messages: dict[str, Any], lang: str = "en") -> Table:
    t = catalog_words(lang)
    value_col = t("stats.value")
    table = _table(t("html.st.messages"), "", value_col, right=[value_col])
    table.add_row(t("stats.messages"), _count(messages.get("count", 0), lang))
    table.add_row("  " + t("stats.complete"), _count(messages.get("complete", 0), lang))
    for origin, n in messages.get("by_origin", {}).items():
        table.add_row(f"  {origin}", _count(n, lang))
    size = messages.get("size")
    if size:
        table.add_row(
            t("stats.size"),
            f"{_size(size['median'], lang)} / {_size(size['p95'], lang)} / {_size(size['max'], lang)}",
        )
    attachments = messages.get("attachments", {})
    table.add_row(t("stats.attachments"), _count(attachments.get("count", 0), lang))
    if attachments.get("count"):
        table.add_row("  " + t("stats.decoded_bytes"), _size(attachments.get("bytes", 0), lang))
        for ctype, n in attachments.get("types", {}).items():
            table.add_row(f"  {ctype}", _count(n, lang))
    b64 = messages.get("base64")
    if b64:
        table.add_row(t("stats.b64_parts"), _count(b64["parts"], lang))
        table.add_row("  " + t("stats.b64_sizes"),
                      f"{_size(b64['encoded_bytes'], lang)} / {_size(b64['decoded_bytes'], lang)}")
        percent = b64["overhead_percent"]  # None when the parts decoded to nothing (damaged or empty)
        table.add_row("  " + t("stats.b64_overhead"), _size(b64["overhead_bytes"], lang)
                      + (f" ({_count(percent, lang)} %)" if percent is not None else ""))
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
        lang: str = "en",
    ) -> None:
        self.console = console
        self.collector = collector
        self.findings = findings
        self.feed = feed
        self.lang = lang

    def session(self, session: Session) -> None:
        if self.feed:
            self.collector.session(session)

    def end(self, stats: CaptureStats, elapsed: float) -> None:
        self.collector.end(stats, elapsed)
        result = self.collector.result()
        if self.findings is not None:
            result.extra["findings"] = self.findings.summary()
        for renderable in stats_renderables(result, top=self.collector.limits.top, lang=self.lang):
            print_unpadded(self.console, renderable)
