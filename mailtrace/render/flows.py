"""``mailtrace flows`` as text: each message as a path of hops, with delays and Received lines.

::

    Flow 1 · <20240612.lunch.1@client.local.example> · “Lunch on Friday?” from Alice Example <…>
      2 hops in 0.079 s · the Received chain matches the hops in the capture
      Hop  Session  Time (UTC)               Path                              Carrier    Delay
        1        1  2026-11-26 13:22:24.098  127.0.0.10:44112 → 127.0.0.25:25  SMTP DATA  -
        2        2  2026-11-26 13:22:24.177  127.0.0.25:55488 → 127.0.0.26:25  SMTP DATA  0.079 s
          ↳ Received: from client.local.example [127.0.0.10] by mail.local.example ✓

Under each hop after the first, a line says what it added to the header (the Received lines its
message has that the previous hop's did not) and whether they record the previous hop (✓/✗). Every
word comes from :mod:`mailtrace.render.catalog`; retrievals (POP3 RETR, IMAP FETCH) show the path
the message took, from the server to the client.
"""

from __future__ import annotations

from rich.text import Text

from mailtrace.messageflows import FlowCollector, HopReport, MessageFlow, chain_matches, hop_reports
from mailtrace.received import parse_received
from mailtrace.render.catalog import localize_number, text
from mailtrace.render.output import Output, clean, utc
from mailtrace.render.terminal import seconds

COLUMNS = ("flows.col.hop", "flows.col.session", "flows.col.time", "flows.col.path", "flows.col.carrier",
           "flows.col.delay")
PATH = COLUMNS.index("flows.col.path")
ADDED_INDENT = 6
"""Where the line under a hop starts that says what the hop added to the header."""


class FlowsRenderer:
    """Writes the flows of a run, after all sessions were read."""

    def __init__(self, output: Output, *, lang: str = "en", multi_only: bool = False) -> None:
        self.out = output
        self.lang = lang
        self.multi_only = multi_only

    def t(self, key: str, **params: object) -> str:
        seconds_text = params.get("seconds")
        if isinstance(seconds_text, str):  # terminal.seconds writes them the English way: 0,060 s in German
            params["seconds"] = localize_number(seconds_text, self.lang)
        return text(key, self.lang, **params)

    def write(self, collector: FlowCollector) -> None:
        flows = collector.flows()
        shown = [f for f in flows if f.multi_hop or not self.multi_only]
        with self.out.block():
            for number, flow in enumerate(shown, 1):
                self._flow(number, flow)
            multi = sum(1 for f in flows if f.multi_hop)  # what --multi-hop shows: carried by several sessions
            self.out.write(Text(self.t("flows.summary", n=len(flows), multi=multi), "title"))
            if collector.skipped:
                self.out.paragraph(Text(self.t("flows.skipped", n=collector.skipped), "dim"), indent=2)
            if collector.dropped:
                self.out.paragraph(Text(self.t("flows.dropped", n=collector.dropped), "dim"), indent=2)

    def _flow(self, number: int, flow: MessageFlow) -> None:
        out = self.out
        title = Text(self.t("flows.flow", n=number), "title")
        title.append(" · ", "dim")
        title.append(clean(flow.message_id or self.t("flows.no_message_id")), "message")
        subject = self.t("ui.quoted", text=flow.subject) if flow.subject else self.t("ui.no_subject")
        title.append(" · " + clean(subject))
        if flow.sender:
            title.append(" " + clean(self.t("ui.from", sender=flow.sender)))
        out.paragraph(title, hang=2)
        reports = hop_reports(flow)
        key = "flows.fetched_again" if flow.fetched_again and flow.multi_session else \
            "flows.hops" if flow.multi_session or len(reports) < 2 else "flows.hops.one_session"
        facts = [self.t(key, n=len(reports),
                        seconds=seconds(reports[-1].hop.ts - reports[0].hop.ts) if reports else "0")]
        verdict = chain_matches(reports)
        if verdict is not None:
            facts.append(self.t("flows.chain.ok" if verdict else "flows.chain.mismatch"))
        before = reports[0].hop.received_count if reports else 0
        if before:
            facts.append(self.t("flows.before", n=before))
        out.paragraph(Text(clean(" · ".join(facts)), "dim" if verdict is not False else "tone.warn"), indent=2,
                      hang=2)
        cells = [self._cells(i, r) for i, r in enumerate(reports, 1)]
        titles = [self.t(key) for key in COLUMNS]
        widths = [max(len(titles[c]), *(len(row[c]) for row in cells)) for c in range(len(COLUMNS))]
        # too wide for the terminal (--width 80, IPv6 paths): the path goes on a line of its own
        path_below = out.width is not None and 2 + sum(widths) + 2 * (len(widths) - 1) > out.width
        columns = [c for c in range(len(COLUMNS)) if not (path_below and c == PATH)]
        right = {0, 1}

        def line(values: list[str]) -> str:
            parts = [f"{values[c]:>{widths[c]}}" if c in right else f"{values[c]:<{widths[c]}}" for c in columns]
            return ("  " + "  ".join(parts)).rstrip()

        out.write(Text(line(titles), "header"))
        for values, report in zip(cells, reports, strict=True):
            out.write(Text(clean(line(values))))
            if path_below:
                out.paragraph(Text(clean(values[PATH])), indent=ADDED_INDENT, hang=2)
            if report.added is not None:
                style = "tone.warn" if report.matches is False or report.continuous is False else "dim"
                added = Text(clean("↳ " + self._added(report)), style)
                out.paragraph(added, indent=ADDED_INDENT, hang=2)
        out.write("")

    def _cells(self, index: int, report: HopReport) -> list[str]:
        hop = report.hop
        path = f"{hop.server} → {hop.client}" if hop.toward_client else f"{hop.client} → {hop.server}"
        carrier = self.t("flows.origin." + hop.origin) if hop.origin else hop.protocol.upper()
        delay = self.t("ui.seconds", seconds=seconds(report.delay)) if report.delay is not None else "-"
        return [str(index), str(hop.session), utc(hop.ts), path, carrier, delay]

    def _added(self, report: HopReport) -> str:
        if report.added is None:
            return "-"
        if not report.added:
            text_ = self.t("flows.added.none")
        else:
            described = []
            for value in report.added:
                hop = parse_received(value)
                sender = hop.from_ or "?"
                if hop.from_ip:
                    sender += f" [{hop.from_ip}]"
                described.append(self.t("flows.added.received", sender=sender, by=hop.by or "?"))
            text_ = "; ".join(described)
        mark = {True: " ✓", False: " ✗", None: ""}[report.matches]
        if report.continuous is False:
            text_ += " · " + self.t("flows.gap")
        return text_ + mark
