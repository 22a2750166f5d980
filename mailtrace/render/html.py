"""The HTML report: one self-contained, offline, safe file per run.

:class:`HtmlReport` is a session consumer (see ``mailtrace.commands.analyze``). Each session is
turned into its HTML section the moment it arrives and spooled to a temporary file, so only the
small index row and the overview counters stay in memory; ``end()`` writes the page: head,
overview, index, the spooled sections, the data blocks, the script.

What a section shows comes from the same places as the other outputs: the JSON report's
``session_json`` (embedded verbatim, all sessions in one ``<script type="application/json">``
block at the end of the page), the shared captions of :func:`mailtrace.render.captions.steps`,
the session's rows, the reply explanations of :mod:`mailtrace.render.explain` and the message
detail helpers of :mod:`mailtrace.render.message`. Nothing is re-parsed.

The findings and statistics are the JSON report's too: the command puts its ``findings`` and
``stats`` keys into :attr:`HtmlReport.extra` before ``end()`` (``commands/report_data.ReportData``);
the page embeds that dict and draws the findings table, the per-session findings and the
statistics section (:mod:`mailtrace.render.html_stats`) from it. A session's findings are only
complete at the end (some span sessions), so its spooled section holds slot markers that
``end()`` fills while copying the sections into the page.

Safety: every value from a capture is hostile. Templates autoescape; text is additionally passed
through :func:`~mailtrace.render.svg.clean_text` (control and bidi characters made visible, non-UTF-8
bytes shown as ``\\xNN``) and cut to :attr:`HtmlLimits.max_text`; data for the script is JSON with
``<``, ``>``, ``&`` and the JS line separators escaped; no value from a capture ever becomes a URL,
an attribute name, a tag or script. The page's Content-Security-Policy forbids every load and
allows only the report's own nonce'd ``<style>`` and ``<script>``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import secrets
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from mailtrace import __version__
from mailtrace.capture.decode import TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN
from mailtrace.envelope import compare_envelope
from mailtrace.extract import expected_partial, incomplete_reason, missing_known
from mailtrace.filters import sealed
from mailtrace.messageflows import RETRIEVAL as _RETRIEVAL
from mailtrace.mime import Attachment, Part
from mailtrace.model import (
    Anomaly,
    AuthAttempt,
    BodyData,
    Command,
    Direction,
    Event,
    GapEvent,
    MessageEnd,
    Note,
    Opaque,
    Phase,
    Reply,
    TlsStart,
)
from mailtrace.pipeline import CaptureStats
from mailtrace.protocols import BY_NAME
from mailtrace.received import received_chain
from mailtrace.render import captions
from mailtrace.render.catalog import CATALOGS, EN, fmt_num, localize_number
from mailtrace.render.catalog import has as catalog_has
from mailtrace.render.catalog import text as catalog_text
from mailtrace.render.context import ContextBlock, context_blocks, row_info, row_proto
from mailtrace.render.explain import explain_challenge, explain_smtp_reply, once_each
from mailtrace.render.html_stats import stats_view
from mailtrace.render.json import FORMAT_NAME, FORMAT_VERSION, capture_json, session_json
from mailtrace.render.message import ORIGINS, defect_text, header_rows, hop_cells, part_overhead
from mailtrace.render.rows import (
    PacketGroup,
    group_rows,
    left_out,
    note_text,
    partial_label,
    placeholder_text,
    protocol_column,
    retransmission_mark,
)
from mailtrace.render.svg import (
    SURROGATE,
    Arrow,
    Bar,
    bar_chart,
    clean_text,
    fmt_latency,
    ladder,
    text,
    timeline_chart,
)
from mailtrace.session import MessageRecord, PacketRow, Session, SessionLimits

if TYPE_CHECKING:  # the collector imports EmbeddedFile from here
    from mailtrace.render.attachments import AttachmentCollector


@dataclass(frozen=True, slots=True)
class HtmlLimits:
    """What bounds the size of a report (documented in docs/html-report.md)."""

    max_rows: int = 1_000
    """Packet rows shown per session; a note says how many more there were."""
    max_arrows: int = 250
    """Arrows drawn in a session's ladder diagram."""
    max_reply_lines: int = 12
    """Lines of one multi-line reply shown in its packet row."""
    max_text: int = 400
    """Characters of one piece of text (a command line, a header value, a file name)."""
    max_list: int = 200
    """Entries of one list in a section (transactions, auth attempts, anomalies, messages, headers)."""
    max_sections: int = 2_000
    """Sessions that get a full section; later ones appear in the index only."""
    max_index_rows: int = 10_000
    """Sessions listed in the index; the overview still counts all of them."""
    max_session_json: int = 512 * 1024
    """Embedded JSON of one session; a bigger one is left out (``--format json`` has it)."""
    max_bytes: int = 16 * 1024 * 1024
    """Sections with their embedded JSON (UTF-8 bytes); past it, index rows only. Embedded
    attachments have their own limit (:class:`mailtrace.render.attachments.EmbedLimits`)."""
    max_timeline: int = 200_000
    """Session start times kept for the overview chart (about 100 bytes each)."""
    max_findings: int = 2_000
    """Rows of the findings table (each session's section lists up to ``max_list`` of its own)."""
    max_flows: int = 500
    """Message flows drawn in the flows section (all are in the embedded JSON)."""
    max_extra_json: int = 8 * 1024 * 1024
    """Embedded findings and statistics JSON; a bigger key is left out (named in the downloaded JSON)."""


PROTOCOLS = tuple(BY_NAME)
_TONES = {"ok": "ok", "warn": "warn", "fail": "bad"}
_PHASE_ORDER = [p.value for p in Phase]
# Mechanisms whose exchange carries the password (or a bearer token) itself.
_EXPOSING = {"PLAIN", "LOGIN", "USER", "XOAUTH2", "OAUTHBEARER", "XOAUTH"}
_KNOWN_KEYS = {
    "id",
    "protocol",
    "client",
    "server",
    "tunnel",
    "start",
    "end",
    "duration",
    "packets",
    "stream",
    "file",
    "first_frame",
    "last_frame",
    "tls",
    "decrypted",
    "close",
    "bytes",
    "gaps",
    "phases",
    "commands",
    "replies",
    "helo",
    "user",
    "auth",
    "transactions",
    "messages",
    "anomalies",
    "tls_info",
    "notes",
    "rows_elided",
    "events_dropped",
    "listed_dropped",
    "anomalies_dropped",
    "notes_dropped",
    "logins_dropped",
    "messages_dropped",
    "messages_dropped_by_origin",
    "messages_dropped_complete",
    "retransmissions",  # marked on the packet rows
    "context",  # rows and notes of their own
    "context_checks",
    "context_dropped",
}
"""Keys of the JSON session that the page shows in its own way; any other is a protocol's record
(``smtp``, ``pop3``, ``imap``) and gets a table under "Protocol details"."""
_MSG_KEYS = ("subject", "from", "to", "cc", "date", "message_id")
SEVERITIES = ("high", "medium", "low", "info")
"""Finding severities, most severe first (docs/findings.md)."""
_SEVERITY_CSS = {"high": "bad", "medium": "warn", "low": "mid", "info": "info"}
_SLOT = "<!--mailtrace:slot:"
_SLOT_RE = re.compile(r"<!--mailtrace:slot:(\w+):(\d+)-->")
"""A place in a spooled section that end() fills (a session's findings, known only then). Text from a
capture can never contain it: every ``<`` from a capture is escaped."""


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("mailtrace.render", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["bytes"] = _bytes_filter
    env.filters["utc"] = fmt_utc
    env.filters["secs"] = _secs_filter
    env.filters["latency"] = _latency_filter
    env.filters["num"] = _num_filter
    env.filters["fixed"] = _fixed_filter
    env.filters["plural"] = plural
    env.globals["frame_link"] = frame_link
    return env


@pass_context
def _num_filter(ctx: Context, n: int | float) -> str:
    """``1,234`` (``1.234`` in German): a count in the page's language (``lang`` of the render context)."""
    lang = ctx.get("lang")
    return fmt_num(n, lang if isinstance(lang, str) else "en")


def _ctx_lang(ctx: Context) -> str:
    lang = ctx.get("lang")
    return lang if isinstance(lang, str) else "en"


@pass_context
def _bytes_filter(ctx: Context, n: int | float | None) -> str:
    """:func:`fmt_bytes` in the page's language (``57.7 KiB``; ``57,7 KiB`` in German)."""
    return localize_number(fmt_bytes(n), _ctx_lang(ctx))


@pass_context
def _secs_filter(ctx: Context, value: float | None) -> str:
    """:func:`fmt_secs` in the page's language (``4.623 s``; ``4,623 s`` in German)."""
    return localize_number(fmt_secs(value), _ctx_lang(ctx))


@pass_context
def _latency_filter(ctx: Context, value: float | None) -> str:
    """A delay as the charts write it, down to microseconds (``24 µs``, ``1.07 ms``), in the page's language:
    the tables beside the latency charts said ``0.0 ms`` for what the chart showed as 24 µs."""
    return "—" if value is None else fmt_latency(value, _ctx_lang(ctx))


@pass_context
def _fixed_filter(ctx: Context, value: float, digits: int = 1) -> str:
    """A number with ``digits`` decimals in the page's language (``73.0``; ``73,0`` in German)."""
    return localize_number(f"{float(value):.{int(digits)}f}", _ctx_lang(ctx))


class _Lenient(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


class Translator:
    """``t(key, **params)`` of the templates: the page's own words from the catalogue, in its language.

    The message is our markup (it may hold ``<code>`` or a ``<span>``); every parameter is escaped
    unless it is already :class:`Markup`, and a whole number is written with its thousands grouped
    (``n`` also picks the singular or plural form of a pair, as :func:`catalog.text` does)."""

    def __init__(self, lang: str = "en") -> None:
        self.lang = lang
        self._catalog = CATALOGS.get(lang, EN)

    def __call__(self, key: str, /, **params: Any) -> Markup:
        return Markup(self._format(key, params, markup=True))  # noqa: S704 - our catalogue's markup, parameters escaped

    def optional(self, key: str, fallback: str) -> str:
        """The catalogue's words for ``key`` when it has them, else ``fallback`` (a value from the capture,
        e.g. a protocol name of the hierarchy, escaped by the template)."""
        return self._format(key, {}, markup=False) if key in EN else fallback

    def plain(self, key: str, /, **params: Any) -> str:
        """The same words as text, for values the templates escape themselves (keys without markup)."""
        return self._format(key, params, markup=False)

    def _format(self, key: str, params: dict[str, Any], *, markup: bool) -> str:
        message = self._catalog.get(key)
        if message is None:
            message = EN.get(key, key)
        if isinstance(message, tuple):
            message = message[0] if params.get("n", 1) == 1 else message[1]
        values = _Lenient()
        for name, value in params.items():
            if isinstance(value, int) and not isinstance(value, bool):
                values[name] = fmt_num(value, self.lang)
            elif markup and not isinstance(value, Markup):
                values[name] = escape(value)
            else:
                values[name] = value
        return message.format_map(values)

    def count_attrs(self, key: str) -> Markup:
        """``data-one``/``data-many`` attributes: the count line ``key`` (``{shown} of {n} sessions``) for
        the page's script, which fills in the numbers after filtering."""
        message = self._catalog.get(key) or EN.get(key, key)
        one, many = message if isinstance(message, tuple) else (message, message)
        return Markup(' data-one="{}" data-many="{}"').format(one, many)


def frame_link(sid: int, frame: int) -> Markup:
    """A link to a frame's row in a session's packet table (both integers)."""
    return Markup('<a href="#s{0}-f{1}">{1}</a>').format(int(sid), int(frame))


_ENV: Environment | None = None
_ASSETS: dict[str, Markup] = {}


def asset(name: str) -> Markup:
    """The report's own stylesheet or script (package data), to be inlined under the nonce."""
    if name not in _ASSETS:
        source = resources.files("mailtrace.render").joinpath("templates", name).read_text("utf-8")
        _ASSETS[name] = Markup(source)  # noqa: S704 - our own package data, not capture data
    return _ASSETS[name]


def environment() -> Environment:
    global _ENV  # noqa: PLW0603 - one jinja environment per process, built on first use
    if _ENV is None:
        _ENV = _env()
    return _ENV


# --------------------------------------------------------------------------- formatting helpers


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 session``, ``2 sessions``: a count with its noun in the right number (``many`` for irregular ones)."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def fmt_bytes(n: int | float | None) -> str:
    if n is None:
        return "—"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - loop always returns


def fmt_utc(ts: float | None) -> str:
    if ts is None:
        return "—"
    try:
        return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    except (OverflowError, OSError, ValueError):
        return f"{ts:.6f}"


def fmt_secs(value: float | None) -> str:
    if value is None:
        return "—"
    if round(value * 1000, 1) < 1000:  # units are chosen after rounding: never "1000.0 ms" or "60 s"
        return f"{value * 1000:.1f} ms"
    if round(value, 3) < 120:
        return f"{value:.3f} s"
    minutes, secs = divmod(round(value), 60)
    if minutes < 120:
        return f"{minutes} min {secs} s"
    hours = value / 3600
    if round(hours, 1) < 100:
        return f"{hours:.1f} h"
    days = value / 86_400  # a spliced capture, or a frame with a wrong clock: days, not 122,833.5 h
    return f"{days:.1f} d" if round(days, 1) < 100 else f"{days:,.0f} d"


# JS line separators, and bidi controls that would make the page's source mislead a reader.
_JSON_INVISIBLE = {
    cp: f"\\u{cp:04x}" for cp in (0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
}


def script_json(value: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``</script``, ``<!--``, ``]]>``."""
    out = json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
    out = out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    out = out.translate(_JSON_INVISIBLE)
    # lone surrogates (non-UTF-8 bytes kept by surrogateescape) cannot be written as UTF-8
    return out.encode("utf-8", "backslashreplace").decode("utf-8") if _has_surrogate(out) else out


def _has_surrogate(s: str) -> bool:
    return SURROGATE.search(s) is not None


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_filename(name: str | None, fallback: str) -> str:
    """A download name that cannot traverse, hide an extension or carry markup."""
    base = _SAFE_NAME.sub("_", clean_text(name or "")).strip("._") or fallback
    return base[:100]


def tcp_flags(flags: int) -> str:
    names = [
        n
        for bit, n in (
            (TCP_SYN, "SYN"),
            (TCP_FIN, "FIN"),
            (TCP_RST, "RST"),
            (TCP_PSH, "PSH"),
            (TCP_ACK, "ACK"),
        )
        if flags & bit
    ]
    return "[" + ", ".join(names) + "]" if names else "[]"


def reply_class(protocol: str, status: str) -> tuple[str, str]:
    """(label, css class) of a reply for the reply-class chart."""
    if protocol == "smtp" and status[:1].isdigit():
        css = {"2": "ok", "3": "mid", "4": "warn", "5": "bad"}.get(status[0], "mid")
        return f"SMTP {status[0]}xx", css
    label = f"{protocol.upper()} {status}"
    if status in ("+OK", "OK"):
        return label, "ok"
    if status in ("-ERR", "NO", "BAD"):
        return label, "bad" if status != "NO" else "warn"
    return label, "mid"


def is_error(protocol: str, status: str) -> bool:
    if protocol == "smtp":
        return status[:1] in ("4", "5")
    return status in ("-ERR", "NO", "BAD")


# --------------------------------------------------------------------------- the report


@dataclass
class _Overview:
    sessions: int = 0
    per_protocol: Counter[str] = field(default_factory=Counter)
    tls_per_protocol: Counter[str] = field(default_factory=Counter)
    messages: int = 0
    message_bytes: int = 0
    attachments: int = 0
    anomalies: int = 0
    anomaly_kinds: Counter[str] = field(default_factory=Counter)
    replies: Counter[tuple[str, str]] = field(default_factory=Counter)
    credentials: list[dict[str, Any]] = field(default_factory=list)
    credentials_total: int = 0
    starts: list[tuple[float, str]] = field(default_factory=list)
    sections: int = 0
    stubs: int = 0
    index_dropped: int = 0
    embedded_attachments: int = 0
    timeline_dropped: int = 0


class HtmlReport:
    """Collects sessions into one HTML page written at :meth:`end`."""

    session_limits = SessionLimits()
    """The limits the analyzer kept sessions within (named in the notes on what a session left out)."""

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[str],
        *,
        show_secrets: bool = False,
        limits: HtmlLimits | None = None,
        title: str | None = None,
        attachments: AttachmentCollector | None = None,
        nonce: str | None = None,
        lang: str = "en",
        stats: CaptureStats | None = None,
        explain: bool = True,
        context: bool = True,
    ) -> None:
        self.limits = limits or HtmlLimits()
        self.show_secrets = show_secrets
        self.title = title
        self.attachments = attachments
        self.lang = lang
        """Language of captions, explanations and header meanings (as the text views)."""
        self.explain = explain
        """Explain SMTP failure codes and EHLO extensions under their rows (``--no-explain``: off)."""
        self.context = context
        """Sessions' DNS/ident context in the embedded JSON (``--no-context``: empty lists, as the JSON report)."""
        self.extra: dict[str, Any] = {}
        """Top-level keys of the JSON report besides sessions and capture (``findings``, ``stats``,
        ``filter``, ``live``), set by the command before :meth:`end`; embedded, and drawn from."""
        self._last_shown: dict[int, int] = {}
        """Session id → last frame of its packet table (frame links go only to rows that exist)."""
        self._by_session: dict[int, list[dict[str, Any]]] = {}
        self._sections: set[int] = set()
        """Sessions that have a detail section (a flow hop links to it)."""
        self.t = Translator(lang)
        """The page's own words (headings, labels, notes) in ``lang``: ``t`` of every template."""
        self.words = (self.t.plain("html.yes"), self.t.plain("html.no"))
        """How true and false read in record values."""
        self._phase_names = {p.value: catalog_text("phase." + p.value, lang) for p in Phase}
        """Phase labels in the report's language (the CSS classes keep the English names)."""
        self.stats = stats
        """The running analyzer's totals, read for Time 0 (may be set after construction)."""
        self.nonce = nonce or secrets.token_urlsafe(18)
        self.env = environment()
        self._section_tpl = self.env.get_template("session.html.j2")
        self._findings_tpl = self.env.get_template("findings.html.j2")
        self.overview = _Overview()
        self.index: list[dict[str, Any]] = []
        self._spooled = 0
        self._stream: IO[str] | None = None
        self._tmp_path: Path | None = None
        self.path: Path | None = None
        if isinstance(target, (str, os.PathLike)):
            self.path = Path(target)
            if self.path.is_dir():
                raise IsADirectoryError(21, "is a directory", str(self.path))
            # Try now, so a place that cannot be written fails before the analysis rather than after it.
            with tempfile.TemporaryFile(dir=self.path.parent):
                pass
        else:
            self._stream = target
        # Sections wait here until end() knows the overview and index that come before them.
        self._spool = _spool()
        # The sessions' JSON and the embedded files go into one data block each at the end of the
        # page: a <script> element per section makes the browser's parser yield at every one, and
        # loading a page of a few hundred sessions then takes several times as long.
        self._data = _spool()
        self._data_count = 0
        self._files = _spool()
        self._files_count = 0
        self._section_data: str | None = None
        self._section_files: list[tuple[str, str]] = []
        self.written = 0

    # ------------------------------------------------------------------ consumer protocol
    def session(self, s: Session) -> None:
        data = session_json(s, self.show_secrets, lang=self.lang, context=self.context)
        ov = self.overview
        ov.sessions += 1
        ov.per_protocol[s.protocol] += 1
        if s.tls != "none":
            ov.tls_per_protocol[s.protocol] += 1
        if len(ov.starts) < self.limits.max_timeline:
            ov.starts.append((s.start, s.protocol))
        else:
            ov.timeline_dropped += 1
        for r in s.replies:
            ov.replies[reply_class(s.protocol, r.status)] += 1
        ov.messages += s.message_total
        ov.message_bytes += sum(int(m.get("bytes") or 0) for m in data["messages"])
        ov.attachments += sum(len(m.get("attachments") or ()) for m in data["messages"])
        ov.anomalies += len(s.anomalies)
        ov.anomaly_kinds.update(a.kind for a in s.anomalies)
        auth = self._auth_rows(s)
        for a in auth:
            if a["cleartext"]:
                ov.credentials_total += 1
                if len(ov.credentials) < self.limits.max_list:
                    ov.credentials.append({**a, "sid": s.id, "protocol": s.protocol})

        embedded = self.attachments.take(s.file, s.stream) if self.attachments is not None else {}
        row = self._index_row(s, data)
        has_section = False
        if ov.sections < self.limits.max_sections and self._spooled < self.limits.max_bytes:
            html = self._section(s, data, auth, embedded)
            blob = self._section_data or ""
            size = len(html.encode("utf-8", "backslashreplace")) + len(
                blob.encode("utf-8", "backslashreplace")
            )
            if self._spooled + size <= self.limits.max_bytes:
                self._spool.write(html)
                if blob:
                    self._data.write(("," if self._data_count else "") + "\n" + blob)
                    self._data_count += 1
                for key, b64 in self._section_files:
                    self._files.write(("," if self._files_count else "") + f'\n"{key}":"{b64}"')
                    self._files_count += 1
                    ov.embedded_attachments += 1
                self._spooled += size
                ov.sections += 1
                has_section = True
                self._sections.add(s.id)
        if not has_section:
            ov.stubs += 1
        row["section"] = has_section
        if len(self.index) < self.limits.max_index_rows:
            self.index.append(row)
        else:
            ov.index_dropped += 1

    def end(self, stats: CaptureStats, elapsed: float = 0.0) -> None:
        del elapsed  # the page is the same however fast the machine was
        flows = self.extra.get("flows")
        if flows is not None and not isinstance(flows, list):
            self.extra["flows"] = list(flows)  # the JSON report writes them one by one; the page wants them all
        if self._stream is not None:
            out = self._stream
        else:
            # Written next to the target and renamed over it when complete: never a half report.
            assert self.path is not None
            fd, tmp = tempfile.mkstemp(prefix=".mailtrace-", suffix=".html.tmp", dir=self.path.parent)
            self._tmp_path = Path(tmp)
            out = os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace")
        try:
            ctx = self._page_context(stats)
            top = self.env.get_template("top.html.j2").render(**ctx)
            bottom, data_marker, tail = (
                self.env.get_template("bottom.html.j2").render(**ctx).partition(_DATA_MARKER)
            )
            assert data_marker, "bottom.html.j2 lost its data marker"
            pieces: list[str | IO[str]] = [
                top,
                self._spool,
                bottom,
                '<script type="application/json" id="session-data">[',
                self._data,
                "\n]</script>\n",
                '<script type="application/json" id="attachment-data">{',
                self._files,
                "\n}</script>\n",
                '<script type="application/json" id="report-extra">',
                ctx["extra_json"],
                "</script>\n",
                tail,
            ]
            self.written = 0
            for piece in pieces:
                if isinstance(piece, str):
                    out.write(piece)
                    self.written += len(piece)
                elif piece is self._spool:
                    self.written += self._copy_sections(out)
                else:
                    piece.seek(0)
                    while chunk := piece.read(1 << 20):
                        out.write(chunk)
                        self.written += len(chunk)
            out.flush()
            if self._tmp_path is not None and self.path is not None:
                out.close()
                self._tmp_path.chmod(0o644)
                self._tmp_path.replace(self.path)
                self._tmp_path = None
                self.written = self.path.stat().st_size
        finally:
            if self._tmp_path is not None:
                out.close()
                self._tmp_path.unlink(missing_ok=True)
                self._tmp_path = None
            self.discard()

    def _copy_sections(self, out: IO[str]) -> int:
        """The spooled sections, with each slot line replaced by what is known only now (findings)."""
        self._spool.seek(0)
        written = 0
        buffer: list[str] = []
        size = 0
        for raw in self._spool:
            line = _SLOT_RE.sub(lambda m: self._slot(m.group(1), m.group(2)), raw) if _SLOT in raw else raw
            buffer.append(line)
            size += len(line)
            if size >= 1 << 20:
                out.write("".join(buffer))
                written += size
                buffer, size = [], 0
        out.write("".join(buffer))
        return written + size

    def _slot(self, kind: str, sid_text: str) -> str:
        sid = int(sid_text)
        findings = self._by_session.get(sid, [])
        if kind == "findings":
            return self._findings_tpl.render(findings=findings[: self.limits.max_list], sid=sid,
                                             hidden=max(0, len(findings) - self.limits.max_list),
                                             t=self.t, lang=self.lang)
        if kind == "badge" and findings:
            worst = findings[0]["severity"]  # most severe first
            label = self.t("html.badge.findings", n=len(findings), severity=self.t("severity." + worst))
            return f'<span class="pill {_SEVERITY_CSS.get(worst, "mid")}">{label}</span>\n'
        return ""

    def discard(self) -> None:
        """Drop the spooled sections (after end(), an error or an interrupted run)."""
        for spool in (self._spool, self._data, self._files):
            spool.close()

    # ------------------------------------------------------------------ index and overview
    def _index_row(self, s: Session, data: dict[str, Any]) -> dict[str, Any]:
        lim = self.limits.max_text
        errors = sum(1 for r in s.replies if is_error(s.protocol, r.status))
        t = self.t.plain
        outcome: list[tuple[str, str]] = []
        if s.auth:
            ok = any(a.success for a in s.auth)
            failed = any(a.success is False and not a.cancelled for a in s.auth)
            cancelled = all(a.cancelled and not a.success for a in s.auth)  # "*": nothing was checked
            outcome.append(
                (t("html.outcome.login_ok"), "ok") if ok
                else (t("html.outcome.login_failed"), "bad") if failed
                else (t("html.outcome.login_cancelled"), "mid") if cancelled
                else (t("html.outcome.login_unknown"), "mid")
            )
        if s.messages:
            outcome.append((t("html.outcome.messages", n=s.message_total), "ok"))
        if sealed(s):
            outcome.append((t("html.outcome.sealed"), "mid"))
        if errors:
            outcome.append((t("html.outcome.errors", n=errors), "warn"))
        if s.anomalies:
            outcome.append((t("html.anomalies", n=len(s.anomalies)), "bad"))
        if s.close in ("rst", "reset"):
            outcome.append((t("html.outcome.reset"), "warn"))
        elif s.close not in ("fin", "closed"):
            outcome.append((text(s.close, 40), "mid"))
        return {
            "id": s.id,
            "protocol": s.protocol,
            "client": text(str(s.client), lim),
            "server": text(str(s.server), lim),
            "start": s.start,
            "duration": s.duration,
            "user": text(s.user, 80) if s.user else "",
            "tls": s.tls,
            "decrypted": s.decrypted,
            "outcome": outcome,
            "messages": s.message_total,
            "messages_shown": "?" if not s.messages and sealed(s) else s.message_total,
            "anomalies": len(s.anomalies),
            "packets": s.packets,
            "stream": s.stream,
            "file": text(Path(s.file).name if s.file else "", lim),
            "tunnel": text(s.tunnel, 80) if s.tunnel else "",
            "search": " ".join(
                [
                    s.protocol,
                    str(s.client),
                    str(s.server),
                    s.user or "",
                    s.tls,
                    s.helo or "",
                    *[str(m.get("subject") or "") for m in data["messages"][:20]],
                    *[str(m.get("from") or "") for m in data["messages"][:20]],
                ]
            )[:500],
        }

    def _page_context(self, stats: CaptureStats) -> dict[str, Any]:
        ov = self.overview
        t0 = stats.start if stats.start is not None else (min((t for t, _ in ov.starts), default=None))
        t1 = stats.end if stats.end is not None else (max((t for t, _ in ov.starts), default=None))
        protocols = [p for p in PROTOCOLS if ov.per_protocol[p]] + sorted(
            p for p in ov.per_protocol if p not in PROTOCOLS
        )
        timeline = (
            timeline_chart(ov.starts, t0, t1, protocols=protocols, lang=self.lang)
            if t0 is not None and t1 is not None and ov.starts
            else Markup("")
        )
        classes = sorted(ov.replies.items(), key=lambda kv: (kv[0][0].split()[0], kv[0][0]))
        replies_chart = bar_chart(
            [Bar(label, n, css) for (label, css), n in classes], title=self.t.plain("html.chart.replies.title")
        )
        findings, finding_counts = self._findings()
        for row in self.index:
            row["rel"] = (row["start"] - t0) if t0 is not None else 0.0
            own = self._by_session.get(row["id"], [])
            worst = own[0]["severity"] if own else ""
            row["findings"] = (len(own), worst, _SEVERITY_CSS.get(worst, ""))
            row["findings_rank"] = (4 - SEVERITIES.index(worst)) * 100_000 + len(own) if own else 0
            if own:  # the filter box finds sessions by finding id too
                row["search"] += " " + " ".join(dict.fromkeys(f["id"] for f in own))
        stats_json = self.extra.get("stats")
        files = [
            {
                "name": text(f.name, 300),
                "format": f.filetype,
                "packets": f.packets,
                "bytes": f.bytes,
                "start": f.start,
                "end": f.end,
                "truncated": f.truncated,
                "problems": [text(p, 300) for p in f.problems[:20]],
                "error": text(f.error, 300) if f.error is not None else None,
            }
            for f in stats.files
        ]
        names = ", ".join(Path(f.name).name or "stdin" for f in stats.files[:3])
        title = self.title or self.t.plain("html.title", names=names) + (" …" if len(stats.files) > 3 else "")
        return {
            "nonce": self.nonce,
            "lang": self.lang,
            "t": self.t,
            "count_attrs": self.t.count_attrs,
            "title": text(title, 200),
            "css": asset("report.css"),
            "js": asset("report.js"),
            "version": __version__,
            "format_name": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "capture_json": Markup(script_json(capture_json(stats))),  # noqa: S704 - script_json escapes < > &
            "stats": stats,
            "files": files,
            "t0": t0,
            "t1": t1,
            "span": (t1 - t0) if t0 is not None and t1 is not None else None,
            "ov": ov,
            "protocols": protocols,
            "timeline": timeline,
            "replies_chart": replies_chart,
            "reply_classes": [(label, css, n) for (label, css), n in classes],
            "anomaly_kinds": ov.anomaly_kinds.most_common(12),
            "index": self.index,
            "limits": self.limits,
            "show_secrets": self.show_secrets,
            "embed": self.attachments is not None,
            "embed_limits": self.attachments.limits if self.attachments is not None else None,
            "findings": findings,
            "findings_known": "findings" in self.extra,
            "finding_counts": finding_counts,
            "findings_total": sum(finding_counts.values()),
            "findings_hidden": max(0, len(self.extra.get("findings") or []) - len(findings)),
            "findings_dropped": self._findings_dropped(),
            "severities": SEVERITIES,
            "severity_css": _SEVERITY_CSS,
            "st": stats_view(stats_json, lang=self.lang) if isinstance(stats_json, dict) else None,
            "fl": self._flows_view(),
            "extra_json": self._extra_json(),
            "filter": self._filter_text(),
        }

    def _flows_view(self) -> dict[str, Any] | None:
        """The message-flows section, drawn from the JSON report's ``flows`` (None: the run has none).

        Flows seen in several sessions come first and are all listed up to ``max_flows``; the others
        (a message seen once, or fetched twice in one session) are listed only when no flow crosses
        sessions (otherwise they would bury the story)."""
        raw = self.extra.get("flows")
        if not isinstance(raw, list):
            return None
        # a re-download (in one session or from the same mailbox in another) is no hop
        multi = [f for f in raw if f.get("multi_hop", len(f.get("sessions") or []) > 1)]
        chosen = multi or raw
        limit = self.limits.max_flows
        return {
            "total": len(raw),
            "multi": len(multi),
            "single_hidden": len(raw) - len(multi) if multi else 0,
            "hidden": max(0, len(chosen) - limit),
            "limit": limit,
            "rows": [self._flow_row(f) for f in chosen[:limit]],
        }

    def _flow_row(self, flow: dict[str, Any]) -> dict[str, Any]:
        hops = []
        for hop in flow.get("hops") or []:
            client = f"{hop['client']['ip']}:{hop['client']['port']}"
            server = f"{hop['server']['ip']}:{hop['server']['port']}"
            origin = hop.get("origin") or ""
            added = []
            for i, r in enumerate(hop.get("received_added") or []):
                sender = (r.get("from") or "?") + (f" [{r['ip']}]" if r.get("ip") else "")
                line = catalog_text("flows.added.received", self.lang, sender=sender, by=r.get("by") or "?")
                # the verdict is about the line that records the previous hop: the last one added
                last = i == len(hop["received_added"]) - 1
                added.append({"text": text(line, 300), "ok": hop.get("received_matches") if last else None})
            if hop.get("received_added") == [] and hop.get("delay") is not None:
                added.append({"text": catalog_text("flows.added.none", self.lang), "ok": hop.get("received_matches")})
            if hop.get("continuous") is False:
                added.append({"text": catalog_text("flows.gap", self.lang), "ok": None})
            hops.append({
                "session": hop["session"],
                "linked": hop["session"] in self._sections,
                "ts": hop["ts"],
                "path": f"{server} → {client}" if origin in _RETRIEVAL else f"{client} → {server}",
                "carrier": catalog_text("flows.origin." + origin, self.lang) if origin
                else str(hop.get("protocol", "")).upper(),
                "delay": hop.get("delay"),
                "added": added,
            })
        return {
            "message_id": text(flow.get("message_id") or "", 300),
            "key": text(flow.get("key") or "", 100),
            "subject": text(flow.get("subject") or "", 200),
            "sender": text(flow.get("from") or "", 200),
            "duration": flow.get("duration") or 0.0,
            "chain": flow.get("received_chain_matches"),
            "hops": hops,
        }

    def _findings(self) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """The findings table (most severe first, as the collector ordered them) and counts by severity.

        Also files each finding under its session, for the sections' slots."""
        raw = self.extra.get("findings")
        rows: list[dict[str, Any]] = []
        counts = dict.fromkeys(SEVERITIES, 0)
        self._by_session = {}
        if not isinstance(raw, list):
            return rows, counts
        for f in raw:
            if not isinstance(f, dict):
                continue
            row = self._finding_row(f)
            counts[row["severity"]] = counts.get(row["severity"], 0) + 1
            if len(rows) < self.limits.max_findings:
                rows.append(row)
            if row["sid"] is not None:
                self._by_session.setdefault(row["sid"], []).append(row)
        summary = (self.extra.get("stats") or {}).get("findings") if isinstance(self.extra.get("stats"), dict) else None
        if isinstance(summary, dict) and isinstance(summary.get("by_severity"), dict):
            # counted by the collector: includes findings past its limit, which the list leaves out
            counts = {k: int(summary["by_severity"].get(k) or 0) for k in SEVERITIES}
        return rows, counts

    def _findings_dropped(self) -> int:
        stats_json = self.extra.get("stats")
        summary = stats_json.get("findings") if isinstance(stats_json, dict) else None
        return int(summary.get("dropped") or 0) if isinstance(summary, dict) else 0

    def _finding_row(self, f: dict[str, Any]) -> dict[str, Any]:
        lim = self.limits.max_text
        severity = str(f.get("severity"))
        if severity not in SEVERITIES:
            severity = "info"
        sid = f.get("session") if isinstance(f.get("session"), int) else None
        last = self._last_shown.get(sid, -1) if sid is not None else -1
        frames = [x for x in f.get("frames") or [] if isinstance(x, int)]
        return {
            "id": text(f.get("id"), 60),
            "severity": severity,
            "css": _SEVERITY_CSS[severity],
            "sid": sid,
            "section": sid in self._last_shown,
            "frames": [(x, x <= last) for x in frames[:12]],
            "frames_more": max(0, len(frames) - 12),
            "title": text(f.get("title"), lim),
            "detail": text(f.get("detail"), 2 * lim),
            "reference": text(f.get("reference"), 200) if f.get("reference") else "",
        }

    def _extra_json(self) -> Markup:
        """The report's other top-level keys for the page's data block; one that is too big is left out."""
        extra = dict(self.extra)
        blob = script_json(extra)
        omitted: list[str] = []
        while len(blob) > self.limits.max_extra_json and extra:
            biggest = max(extra, key=lambda k: len(script_json(extra[k])))
            del extra[biggest]
            omitted.append(biggest)
            blob = script_json({**extra, "html_omitted_keys": omitted})
        return Markup(blob)  # noqa: S704 - script_json escapes < > &

    def _filter_text(self) -> str:
        described = self.extra.get("filter")
        if not isinstance(described, dict):
            return ""
        return text(", ".join(f"{k} {_compact(v)}" for k, v in described.items() if k != "shown"), 600)

    # ------------------------------------------------------------------ one session
    def _auth_rows(self, s: Session) -> list[dict[str, Any]]:
        decrypted = {r.frame: r.decrypted for r in s.rows}
        out = []
        for a in s.auth[: self.limits.max_list]:
            frame_decrypted = decrypted.get(a.frame, s.decrypted if s.tls != "none" else False)
            mech = (a.mechanism or "").upper()
            exposing = mech in _EXPOSING or mech.startswith("USER")
            if a.secret is None:
                shown = "—"
            elif self.show_secrets:
                shown = text(a.secret, self.limits.max_text)
            else:
                shown = self.t.plain("html.auth.hidden")
            out.append(
                {
                    "mechanism": text(a.mechanism, 60),
                    "username": text(a.username, 200) if a.username else "—",
                    "success": a.success,
                    "cancelled": a.cancelled and not a.success,
                    "frame": a.frame,
                    "first_frame": a.first_frame,
                    "domain": text(a.domain, 200) if a.domain else "",
                    "cleartext": not frame_decrypted,
                    "exposing": exposing,
                    "secret": shown,
                    "secret_seen": a.secret is not None,
                    "extra": [(text(k, 60), text(v, 200)) for k, v in list(a.extra.items())[:10]],
                }
            )
        return out

    def _section(
        self,
        s: Session,
        data: dict[str, Any],
        auth: list[dict[str, Any]],
        embedded: dict[int, list[EmbeddedFile]],
    ) -> str:
        lim = self.limits
        self._t0 = self.time_zero(s)
        shown, steps = self._steps(s)
        self._last_shown[s.id] = max((r.frame for step in steps for r in step["raw"]), default=-1)
        arrows, arrows_dropped = self._arrows(s, steps)
        blob = script_json(data)
        json_ok = len(blob) <= lim.max_session_json
        self._section_data = blob if json_ok else None
        self._section_files = []
        ctx = {
            "t": self.t,
            "lang": self.lang,
            "s": s,
            "d": data,
            "sid": s.id,
            "user": text(s.user, 200) if s.user else "",
            "lim": lim,
            "steps": steps,
            "rows_shown": shown,
            "rows_hidden": max(0, len(s.rows) - shown),
            "left_out": left_out(s, self.session_limits, self.lang),
            "packet_rows": self._packet_rows(s, steps),
            "ladder": ladder(
                arrows,
                client=str(s.client),
                server=str(s.server),
                sid=s.id,
                decrypted=frozenset(r.frame for r in s.rows if r.decrypted),
                phase_names=self._phase_names,
                title=self.t.plain("html.ladder.title", client=str(s.client), server=str(s.server)),
                frame_tip=lambda frame, rel, tip: self.t.plain("html.ladder.tip", frame=frame, rel=rel, tip=tip),
                lang=self.lang,
            ),
            "arrows_dropped": arrows_dropped,
            "auth": auth,
            "show_secrets": self.show_secrets,
            "messages": self._messages(s, data, embedded),
            "messages_hidden": max(0, len(data["messages"]) - lim.max_list),
            "transactions": self._table(data.get("transactions") or []),
            "anomalies": [
                {
                    "frame": a.frame,
                    "direction": a.direction.value,
                    "kind": text(a.kind, 80),
                    "detail": text(a.detail, lim.max_text),
                }
                for a in s.anomalies[: lim.max_list]
            ],
            "anomalies_hidden": max(0, len(s.anomalies) - lim.max_list),
            "gaps": data["gaps"][: lim.max_list],
            "notes": [text(n, lim.max_text) for n in s.notes[: lim.max_list]],
            "tls": self._tls(data.get("tls_info")),
            "facts": self._facts(data),
            "header": self._header(s, data),
            "json_ok": json_ok,
            "json_size": len(blob),
        }
        return self._section_tpl.render(**ctx)

    _t0 = 0.0

    def time_zero(self, s: Session) -> float:
        """Time 0 of a session's tables, as in the terminal view (Wireshark's Time column): the first
        packet of the capture file the session came from, once the analyzer knows it; else the
        session's own first packet."""
        if self.stats is not None:
            for f in reversed(self.stats.files):
                if f.name == s.file and f.start is not None and f.start <= s.start:
                    return f.start
        return s.start

    def _header(self, s: Session, data: dict[str, Any]) -> list[tuple[str, str]]:
        lim = self.limits.max_text
        t = self.t.plain
        tls = t("html.tls." + s.tls) if s.tls in ("none", "starttls", "implicit") else s.tls
        if s.tls != "none":
            tls += t("html.tls.decrypted") if s.decrypted else t("html.tls.not_decrypted")
        rows = [
            (t("html.col.client"), text(str(s.client), lim)),
            (t("html.col.server"), text(str(s.server), lim)),
            (t("html.head.file"), text(s.file, lim) or "—"),
            (t("html.head.filter"), f"tcp.stream eq {s.stream}"),
            (t("html.head.frames"), t("html.head.frames.value", first=str(s.first_frame), last=str(s.last_frame),
                                      packets=t("html.packets", n=s.packets))),
            (
                t("html.col.start"),
                fmt_utc(s.start) + (t("html.head.start.time", time=f"{s.start - self._t0:.6f}")
                                    if s.start != self._t0 else ""),
            ),
            (t("html.col.duration"), localize_number(fmt_secs(s.duration), self.lang)),
            (
                t("html.col.bytes"),
                t("html.head.bytes", client=localize_number(fmt_bytes(s.bytes_client), self.lang),
                  server=localize_number(fmt_bytes(s.bytes_server), self.lang)),
            ),
            ("TLS", tls),
            (t("html.head.end"), t("html.close." + s.close) if s.close in ("fin", "rst") else text(s.close, 60)),
        ]
        if s.tunnel:
            rows.append((t("html.head.tunnel"), text(s.tunnel, lim)))
        if data.get("helo"):
            rows.append((t("html.head.helo"), text(data["helo"], lim)))
        if s.user:
            rows.append((t("html.col.user"), text(s.user, lim)))
        return rows

    def _steps(self, s: Session) -> tuple[int, list[dict[str, Any]]]:
        """The captioned steps with their rows, cut at max_rows rows."""
        room = self.limits.max_rows
        out = []
        shown = 0
        for step in captions.steps(s, lang=self.lang):
            if room <= 0:
                break
            rows = step.rows[:room]
            room -= len(rows)
            shown += len(rows)
            out.append(
                {
                    "phase": step.phase.value,
                    "caption": text(step.caption, 600),
                    "tone": _TONES.get(getattr(step, "tone", ""), ""),
                    "raw": rows,
                }
            )
        return shown, out

    def _packet_rows(self, s: Session, steps: list[dict[str, Any]]) -> Markup:
        """The packet table's body: one ``<tbody>`` per captioned step.

        Built here rather than in the template: it is the one loop that runs for every packet
        (a jinja loop costs about 200 µs a row). Every text goes through :func:`escape`; the rest
        is numbers and fixed class names.
        """
        sid = s.id
        ends = {
            Direction.CLIENT: (escape(str(s.client)), escape(str(s.server))),
            Direction.SERVER: (escape(str(s.server)), escape(str(s.client))),
        }
        out: list[str] = []
        shown = sum(len(step["raw"]) for step in steps)
        blocks = context_blocks(s, lang=self.lang, boundaries=[r.frame for r in s.rows]) if self.context else []
        pending = list(reversed(blocks))
        breaks = [b.frame for b in blocks]
        records: dict[tuple[int, str], list[MessageRecord]] = {}
        for record in s.messages:
            records.setdefault((record.last_frame, record.origin), []).append(record)
        for step in steps:
            phase = step["phase"]
            tone = f" tone-{step['tone']}" if step["tone"] else ""
            name = self._phase_names.get(phase, phase)
            caption = "" if step["caption"].lower() in (phase, name.lower()) else " " + escape(step["caption"])
            rows = step["raw"]
            while pending and rows and pending[-1].frame < rows[0].frame:
                out.append(self._context_block(s, pending.pop()))
            out.append(
                f'<tbody class="step ph-{phase}"><tr class="caption{tone}"><th colspan="7" scope="rowgroup">'
                f'<span class="phase">{escape(name)}</span>{caption}</th></tr>\n'
            )
            for g in group_rows(rows, breaks):
                r = g.row
                if pending and pending[-1].frame < r.frame:  # context packets between two of this step's
                    out.append("</tbody>\n")
                    while pending and pending[-1].frame < r.frame:
                        out.append(self._context_block(s, pending.pop()))
                    resumed = escape(catalog_text("context.resume", self.lang, caption=step["caption"]))
                    out.append(
                        f'<tbody class="step ph-{phase}"><tr class="caption{tone}"><th colspan="7" '
                        f'scope="rowgroup"><span class="phase">{escape(name)}</span> {resumed}</th></tr>\n'
                    )
                src, dst = ends[r.direction]
                proto = str(escape(protocol_column(s, g)))  # the terminal view's words
                decrypted = any(x.decrypted for x in g.rows)
                dec = (
                    ' <span class="pill mid" title="decrypted with the TLS key log">🔓</span>'
                    if decrypted
                    else ""
                )
                lines = self._group_info(s, g, records) if g.body else self._info(s, r)
                info = "".join(f'<div class="{css}">{escape(line)}</div>' for css, line in lines)
                if self.explain and s.protocol == "smtp":
                    for x in g.rows:
                        info += self._explanations(x)
                # the folded packets keep their anchors: frame links (findings, messages, gaps) still land here
                info += "".join(f'<span id="s{sid}-f{x.frame}" class="fold"></span>' for x in (*g.rows[1:], *g.acks))
                length = sum(x.payload_len for x in g.rows)
                group = f' data-frames="{g.rows[0].frame}-{g.rows[-1].frame}"' if len(g.rows) > 1 else ""
                out.append(
                    f'<tr id="s{sid}-f{r.frame}" class="{r.direction.value}{" dec" if decrypted else ""}"{group}>'
                    f'<td class="n">{r.frame}</td>'
                    f'<td class="n" title="{fmt_utc(r.ts)}">{r.ts - self._t0:.6f}</td>'
                    f'<td>{src}</td><td>{dst}</td><td>{proto}{dec}</td><td class="n">{length}</td>'
                    f'<td class="info">{info}</td></tr>\n'
                )
            out.append("</tbody>\n")
        if shown == len(s.rows):  # after the last packet of the session (unless the table was cut)
            out.extend(self._context_block(s, block) for block in reversed(pending))
        return Markup("".join(out))  # noqa: S704 - capture text above is escape()d

    def _context_block(self, s: Session, block: ContextBlock) -> str:
        """The DNS lookups or ident probe made for the session, as a captioned group of rows between
        its own packets (as the terminal view; ``--no-context`` leaves them out)."""
        label = catalog_text("phase." + block.kind, self.lang)
        tone = " tone-warn" if block.tone == "warn" else ""
        out = [
            f'<tbody class="step ph-context ctx-{block.kind}"><tr class="caption{tone}"><th colspan="7" '
            f'scope="rowgroup"><span class="phase">{escape(label)}</span> '
            f"{escape(text(block.caption, 600))}</th></tr>\n"
        ]
        for row, o in block.rows:
            info = escape(text(row_info(row, o, self.lang), self.limits.max_text))
            out.append(
                f'<tr id="s{s.id}-f{row.frame}" class="context">'
                f'<td class="n">{row.frame}</td>'
                f'<td class="n" title="{fmt_utc(row.ts)}">{row.ts - self._t0:.6f}</td>'
                f"<td>{escape(row.src)}</td><td>{escape(row.dst)}</td><td>{escape(row_proto(row, o))}</td>"
                f'<td class="n">{row.payload_len}</td><td class="info">{info}</td></tr>\n'
            )
        out.append("</tbody>\n")
        return "".join(out)

    def _explanations(self, r: PacketRow) -> str:
        """What an SMTP failure code and the EHLO extensions mean, under the row (as the terminal view)."""
        out = []
        explained = []
        for e in r.events or ():
            if not isinstance(e, Reply):
                continue
            one = explain_smtp_reply(e, self.lang) or explain_challenge(e, self.lang)
            if one is not None:
                explained.append(one)
        for found in once_each(explained, self.lang):
            lines = "".join(f'<div class="xl">{escape(text(line, self.limits.max_text))}</div>' for line in found.lines)
            if found.kind == "extensions":
                offered = self.t("html.extensions", n=found.extensions)
                out.append(f'<details class="explain"><summary>{offered}</summary>{lines}</details>')
            else:
                out.append(f'<div class="explain">{lines}</div>')
        return "".join(out)

    def _group_info(
        self, s: Session, g: PacketGroup, records: dict[tuple[int, str], list[MessageRecord]]
    ) -> list[tuple[str, str]]:
        """The Info cell of a message-data line, worded as the terminal view's: the message (subject,
        sender, size, the segments and frames it took, ACKs folded in, attachments) once it ended in
        these segments, else the bytes carried so far; then the other events of its packets."""
        lim = self.limits.max_text

        def t(key: str, **params: object) -> str:
            return catalog_text(key, self.lang, **params)

        frames = g.frames
        segments = f" {t('ui.segments', n=len(frames), first=frames[0], last=frames[-1])}" if len(frames) > 1 else ""
        end = next((e for e in g.events if isinstance(e, MessageEnd)), None)
        bucket = records.get((end.frame, end.origin)) if end is not None else None
        record = bucket.pop(0) if bucket else None
        if record is not None:
            summary = record.summary
            words = [t("ui.message"), t("ui.quoted", text=summary.subject) if summary.subject else t("ui.no_subject")]
            if summary.from_:
                words.append(t("ui.from", sender=summary.from_))
            details = [t("ui.size", n=summary.bytes) + segments]
            if g.acks:
                details.append(t("ui.acks_folded", n=len(g.acks)))
            if summary.attachments:
                details.append(t("ui.attachments", n=len(summary.attachments)))
            head = " ".join(words) + ", " + ", ".join(details)
        else:
            what = next((e.what for e in g.events if isinstance(e, BodyData)), "message")
            key = "ui.what." + what
            head = t("ui.body", what=t(key) if catalog_has(key, self.lang) else what, n=g.body) + segments
            if g.acks:
                head += ", " + t("ui.acks_folded", n=len(g.acks))
        line = ("data", text(("C: " if g.row.direction is Direction.CLIENT else "S: ") + head, lim))
        out = [] if end is not None else [line]
        for e in g.events:
            if e is end:  # where the message ended among the packets' events, as in the terminal view
                out.append(line)
            if not isinstance(e, BodyData):  # the line above says what they said, for all segments
                out.extend(self._event_lines(e, s.protocol, lim, s))
        closing = 0
        for x in g.rows:
            closing |= x.flags & (TCP_FIN | TCP_RST)
        if closing:
            out.append(("tcp", tcp_flags(closing)))
        return out

    def _info(self, s: Session, r: PacketRow) -> list[tuple[str, str]]:
        lim = self.limits.max_text
        if not r.events:
            info = tcp_flags(r.flags)
            if r.payload_len:
                info += f" Len={r.payload_len}"
            mark = retransmission_mark(s, r.frame, self.lang)
            if mark is not None:
                info += " " + mark
            return [("tcp", info)]
        out: list[tuple[str, str]] = []
        for e in r.events:
            out.extend(self._event_lines(e, s.protocol, lim, s))
        return out

    def _event_lines(
        self, e: Event, protocol: str, lim: int, session: Session | None = None
    ) -> list[tuple[str, str]]:
        if isinstance(e, Command):
            tag = f"{e.tag} " if e.tag else ""
            line = f"C: {tag}{e.shown_verb} {e.argument}".rstrip()
            if not self.show_secrets:  # the dissectors' placeholder for a secret, in the page's language
                line = placeholder_text(line, self.lang)
            return [("cmd", text(line, lim))]
        if isinstance(e, Reply):
            tag = f"{e.tag} " if e.tag else ""
            lines = list(e.lines) or [""]
            cap = self.limits.max_reply_lines
            css = "rep err" if is_error(protocol, e.status) else "rep"
            out = [(css, text(f"S: {tag}{e.status} {lines[0]}".rstrip(), lim))]
            out += [(css + " cont", text(f"   {line}", lim)) for line in lines[1:cap]]
            if len(lines) > cap:
                out.append(("rep cont", f"   … {plural(len(lines) - cap, 'more line')}"))
            return out
        if isinstance(e, AuthAttempt):
            t = self.t.plain
            if e.cancelled and not e.success:  # "*" (RFC 4954 §4): nothing was refused
                return [("auth", text(t("html.ev.cancelled"), lim))]
            verdict = t({True: "html.ev.accepted", False: "html.ev.rejected", None: "html.ev.unknown"}[e.success])
            user = t("html.ev.as_user", user=e.username) if e.username else ""
            line = t("html.ev.login", mechanism=e.mechanism, as_user=user, verdict=verdict)
            if self.show_secrets and e.secret is not None:
                line += f" (secret: {e.secret})"
            return [
                ("auth ok" if e.success else ("auth bad" if e.success is False else "auth"), text(line, lim))
            ]
        if isinstance(e, TlsStart):
            what = "STARTTLS accepted" if e.mode == "starttls" else "implicit TLS"
            return [("tls", f"TLS begins here ({what})")]
        if isinstance(e, BodyData):
            return [("data", f"{text(e.what, 40)} data, {plural(e.nbytes, 'byte')}")]
        if isinstance(e, MessageEnd):
            t = self.t.plain
            record = next((m for m in session.messages if m.last_frame == e.frame and m.origin == e.origin),
                          None) if session is not None and not e.complete else None
            partial = partial_label(session, record, self.lang) \
                if session is not None and record is not None else None
            state = (t("html.ev.complete") if e.complete else partial if partial is not None
                     else t("html.ev.missing", n=e.missing_bytes) if missing_known(e.missing_bytes)
                     else t("html.ev.missing_unknown") if e.missing_bytes else t("html.ev.incomplete"))
            return [("data", t("html.ev.end", origin=text(e.origin, 40), state=state))]
        if isinstance(e, Opaque):
            return [("tls", f"encrypted TLS data, {plural(e.nbytes, 'byte')}")]
        if isinstance(e, GapEvent):
            return [
                ("bad", text(f"gap: {plural(e.nbytes, 'byte')} missing from the capture {e.detail}".rstrip(), lim))
            ]
        if isinstance(e, Anomaly):
            return [("bad", text(f"⚠ {e.kind}: {e.detail}", lim))]
        if isinstance(e, Note):
            return [("nt", text(note_text(e.text, self.lang), lim))]
        return [("nt", type(e).__name__)]

    def _arrows(self, s: Session, steps: list[dict[str, Any]]) -> tuple[list[Arrow], int]:
        """One arrow per command, reply and TCP control packet; bulk data folded into one arrow per run."""
        arrows: list[Arrow] = []
        dropped = 0
        closing = False
        run: list[PacketRow] = []

        def flush_run() -> None:
            if not run:
                return
            first = run[0]
            nbytes = sum(x.payload_len for x in run)
            enc = any(isinstance(e, Opaque) for x in run for e in x.events or [])
            label = self.t.plain("html.ladder.tls_run" if enc else "html.ladder.data_run", n=len(run),
                                 bytes=self.t.plain("html.ladder.bytes", n=nbytes))
            kind = "c2s" if first.direction is Direction.CLIENT else "s2c"
            add(
                Arrow(
                    kind=kind,
                    label=label,
                    rel=first.ts - self._t0,
                    phase=first.phase.value,
                    frame=first.frame,
                    css="tls" if enc else "data",
                    tooltip=self.t.plain("html.ladder.frames", label=label, first=first.frame, last=run[-1].frame),
                )
            )
            run.clear()

        def add(a: Arrow) -> None:
            nonlocal dropped
            if len(arrows) < self.limits.max_arrows:
                arrows.append(a)
            else:
                dropped += 1

        for step in steps:
            for r in step["raw"]:
                rel = r.ts - self._t0
                kind = "c2s" if r.direction is Direction.CLIENT else "s2c"
                events = [e for e in r.events or [] if not isinstance(e, MessageEnd)]
                if r.flags & (TCP_FIN | TCP_RST):
                    closing = True
                if r.message_bytes:  # a segment of message data (counted on the row; no event of its own)
                    if run and run[-1].direction is not r.direction:
                        flush_run()
                    run.append(r)
                    if all(isinstance(e, (BodyData, Opaque)) for e in events):
                        continue
                if events and all(isinstance(e, (BodyData, Opaque)) for e in events):
                    if run and run[-1].direction is not r.direction:
                        flush_run()
                    run.append(r)
                    continue
                if not events:
                    if (
                        r.payload_len
                        or r.flags & (TCP_SYN | TCP_FIN | TCP_RST)
                        or closing
                        or r.phase is Phase.SETUP
                    ):
                        if r.payload_len and run and run[-1].direction is r.direction:
                            run.append(r)  # data continues in a segment that completed no event
                            continue
                        flush_run()
                        label = tcp_flags(r.flags) + (f" Len={r.payload_len}" if r.payload_len else "")
                        add(
                            Arrow(
                                kind=kind, label=label, rel=rel, phase=r.phase.value, frame=r.frame, css="tcp"
                            )
                        )
                    continue
                flush_run()
                notes: list[str] = []
                for e in events:
                    if isinstance(e, Note):
                        notes.append(note_text(e.text, self.lang))
                        continue
                    if notes:
                        add(self._notes_arrow(notes, kind, rel, r))
                        notes = []
                    for a in self._event_arrows(e, s.protocol, kind, rel, r):
                        add(a)
                if notes:
                    add(self._notes_arrow(notes, kind, rel, r))
        flush_run()
        return arrows, dropped

    def _event_arrows(self, e: Event, protocol: str, kind: str, rel: float, r: PacketRow) -> Iterable[Arrow]:
        phase = e.phase.value
        if isinstance(e, (Command, Reply)):
            lines = self._event_lines(e, protocol, self.limits.max_text)
            label = lines[0][1][3:]
            more = " " + self.t.plain("html.ladder.more_lines", n=len(e.lines) - 1) \
                if isinstance(e, Reply) and len(e.lines) > 1 else ""
            css = "bad" if isinstance(e, Reply) and is_error(protocol, e.status) else ""
            tooltip = [t for _, t in lines]
            if self.explain and protocol == "smtp" and isinstance(e, Reply) and css:
                found = explain_smtp_reply(e, self.lang)
                tooltip += list(found.lines) if found is not None else []
            yield Arrow(
                kind=kind,
                label=label + more,
                rel=rel,
                phase=phase,
                frame=r.frame,
                css=css,
                tooltip="\n".join(tooltip),
            )
        elif isinstance(e, AuthAttempt):
            ((css, line),) = self._event_lines(e, protocol, self.limits.max_text)
            yield Arrow(kind="note", label=line, rel=rel, phase=phase, frame=r.frame, css=css.split()[-1])
        elif isinstance(e, TlsStart):
            yield Arrow(
                kind="mark",
                label="TLS begins: everything below is encrypted on the wire",
                rel=rel,
                phase=phase,
                frame=r.frame,
                css="tls",
            )
        elif isinstance(e, (Anomaly, GapEvent)):
            ((_, line),) = self._event_lines(e, protocol, self.limits.max_text)
            yield Arrow(kind="mark", label=line, rel=rel, phase=phase, frame=r.frame, css="bad")

    @staticmethod
    def _notes_arrow(notes: list[str], kind: str, rel: float, r: PacketRow) -> Arrow:
        """Facts noted in one packet (e.g. the TLS handshake messages of a record), as one arrow."""
        counts = Counter(notes)
        label = ", ".join(t if counts[t] == 1 else f"{t} ×{counts[t]}" for t in dict.fromkeys(notes))
        return Arrow(
            kind=kind,
            label=label,
            rel=rel,
            phase=r.phase.value,
            frame=r.frame,
            css="nt",
            tooltip="\n".join(notes),
        )

    def _messages(
        self, s: Session, data: dict[str, Any], embedded: dict[int, list[EmbeddedFile]]
    ) -> list[dict[str, Any]]:
        lim = self.limits
        out = []
        for record, m in zip(s.messages[: lim.max_list], data["messages"], strict=False):
            summary = record.summary
            fields = []
            for key in _MSG_KEYS:
                value = m.get(key)
                if isinstance(value, list):
                    value = ", ".join(str(v) for v in value[: lim.max_list])
                fields.append(
                    (
                        key.replace("_", "-").capitalize() if key != "message_id" else "Message-ID",
                        text(value, lim.max_text) if value else "—",
                    )
                )
            headers = [
                {
                    "index": h.index,
                    "name": text(h.name, 100),
                    "value": text(h.value, lim.max_text),
                    "decoded": text(h.decoded, lim.max_text) if h.decoded is not None else None,
                    "meaning": h.meaning,
                    "private": h.private,
                }
                for h in header_rows(record, self.lang, lim.max_list)
            ]
            files = embedded.get(record.index, [])
            by_hash = {f.sha256: f for f in files}
            attachments = []
            for a in (m.get("attachments") or [])[: lim.max_list]:
                if not isinstance(a, dict):
                    continue
                item = self._attachment(a)
                found = by_hash.pop(str(a.get("sha256")), None)
                item["embed"] = found
                attachments.append(item)
            for f in by_hash.values():  # found by the embedder but not (yet) listed by the MIME summary
                attachments.append(
                    {
                        "name": text(f.filename, lim.max_text) if f.filename else "(no name)",
                        "type": text(f.content_type, 100),
                        "encoding": "",
                        "size": f.size,
                        "encoded": None,
                        "md5": f.md5,
                        "sha256": f.sha256,
                        "extra": [],
                        "embed": f,
                    }
                )
            for n, item in enumerate(attachments):
                if item["embed"] is not None:
                    item["key"] = f"att-{s.id}-{record.index}-{n}"
                    self._section_files.append((item["key"], item["embed"].b64))
            carrier = m.get("carrier") or {}
            out.append(
                {
                    "index": m.get("index"),
                    "number": record.index + 1,  # as the terminal's detail view counts them
                    "origin": text(ORIGINS.get(record.origin, record.origin), 60),
                    "first_frame": m.get("first_frame"),
                    "last_frame": m.get("last_frame"),
                    "bytes": m.get("bytes"),
                    "complete": m.get("complete"),
                    "missing": m.get("missing_bytes"),
                    "truncated": m.get("truncated"),
                    "partial": text(incomplete_reason(s, record) or "", lim.max_text)
                    if expected_partial(s, record) else "",
                    "sha256": m.get("sha256"),
                    "fields": fields,
                    "headers": headers,
                    "headers_hidden": max(0, len(summary.headers) - lim.max_list),
                    "hops": self._hops(record),
                    "envelope": self._envelope(s, record),
                    "attachments": attachments,
                    "tree": self._tree(record, partial=expected_partial(s, record)),
                    "defects": [
                        text(defect_text(str(d), self.lang), lim.max_text)
                        for d in (m.get("defects") or [])[: lim.max_list]
                    ],
                    "carrier": [
                        (text(k, 60), text(_compact(v, self.words), lim.max_text))
                        for k, v in list(carrier.items())[:20]
                    ],
                }
            )
        return out

    def _attachment(self, a: dict[str, Any]) -> dict[str, Any]:
        lim = self.limits.max_text
        known = {"filename", "content_type", "encoding", "bytes", "encoded_bytes", "md5", "sha256"}
        name = a.get("filename") or a.get("name")
        return {
            "name": text(name, lim) if name else "(no name)",
            "type": text(a.get("content_type") or "", 100),
            "encoding": text(a.get("encoding") or "", 40),
            "size": a.get("bytes"),
            "encoded": a.get("encoded_bytes"),
            "md5": text(a.get("md5") or "", 64),
            "sha256": text(a.get("sha256") or "", 80),
            "extra": [
                (text(k, 60), text(_compact(v, self.words), lim))
                for k, v in a.items() if k not in known and k != "name"
            ][:10],
        }

    def _tree(self, record: MessageRecord, *, partial: bool = False) -> dict[str, Any] | None:
        """The MIME tree as the terminal's detail view shows it, bounded in depth and in total parts.
        ``partial``: the client asked for part of the message, so a part cut short is no loss."""
        by_path = {a.path: a for a in record.summary.attachments}
        budget = [self.limits.max_list]
        node = self._part(record.summary.parts, by_path, 0, budget, partial)
        if node is not None:
            node["total"] = len(record.summary.parts.walk())
            node["attachments"] = len(record.summary.attachments)
        return node

    def _part(
        self, part: Part, by_path: dict[str, Attachment], depth: int, budget: list[int], partial: bool = False
    ) -> dict[str, Any] | None:
        if depth > 30 or budget[0] <= 0:
            return None
        budget[0] -= 1
        lim = self.limits.max_text
        attachment = by_path.get(part.path)
        facts = [text(x, 100) for x in (f"charset={part.charset}" if part.charset else None, part.encoding,
                                        part.disposition) if x]
        children = [c for c in (self._part(c, by_path, depth + 1, budget, partial) for c in part.children) if c]
        overhead = part_overhead(part, attachment) if part.is_leaf else None
        return {
            "path": text(part.path, 40),
            "type": text(part.content_type, 200),
            "facts": ", ".join(facts),
            "filename": text(part.filename, lim) if part.filename is not None else None,
            "leaf": part.is_leaf,
            "encoded": part.encoded_bytes,
            "decoded": part.decoded_bytes,
            "overhead": localize_number(f"{overhead:+.1f} %", self.lang) if overhead is not None else "",
            "parts": len(part.children),
            "md5": attachment.md5 if attachment is not None else "",
            "sha256": attachment.sha256 if attachment is not None else (part.sha256 or ""),
            "attachment": attachment is not None,
            "complete": part.complete,
            "partial": partial,
            "defects": [text(defect_text(d, self.lang), lim) for d in part.defects[:10]],
            "children": children,
            "hidden": len(part.children) - len(children),
        }

    def _hops(self, record: MessageRecord) -> list[dict[str, Any]]:
        """The Received chain in path order (hop 1 nearest the sender), as the terminal's detail view."""
        lim = self.limits.max_text
        values = record.summary.header_values("received")[: self.limits.max_list]
        out = []
        for hop in received_chain(values):
            index, sender, by, with_, id_, for_, when, delay = hop_cells(hop, lim)
            out.append(
                {
                    "index": index,
                    "parsed": hop.from_ is not None or hop.by is not None,
                    "from": text(sender, lim),
                    "by": text(by, lim),
                    "with": text(with_, lim),
                    "id": text(id_, lim),
                    "for": text(for_, lim),
                    "when": text(when, 100),
                    "delay": delay,
                    "backwards": hop.delay is not None and hop.delay < 0,
                    "notes": [text(n, 200) for n in hop.notes[:10]],
                }
            )
        return out

    def _envelope(self, s: Session, record: MessageRecord) -> dict[str, Any]:
        """Envelope vs header (who the protocol said, against what the message says; Bcc)."""
        view = compare_envelope(s, record, self.lang)
        lim = 300
        recipients = []
        for r in view.recipients[: self.limits.max_list]:
            if not r.in_envelope:
                envelope, css = "—", "muted"
            elif r.reply is not None:
                envelope, css = self.t.plain("html.envelope.yes.reply", reply=r.reply), "ok" if r.accepted else "bad"
            else:
                envelope, css = self.t.plain("html.envelope.yes"), ""
            recipients.append(
                {
                    "address": text(r.address, lim),
                    "envelope": envelope,
                    "css": css,
                    "fields": ", ".join(r.header_fields) or "—",
                    "note": text(r.note, lim),
                    "note_css": "bad" if r.accepted is False else ("warn" if r.note else ""),
                }
            )
        return {
            "source": view.source,
            "label": {"smtp": "MAIL FROM", "delivery": "Return-Path"}.get(view.source),
            "mail_from": "<>" if view.mail_from == "" else text(view.mail_from or "—", lim),
            "from": text(", ".join(view.header_from) or "—", lim),
            "sender": text(view.sender, lim) if view.sender else "",
            "matches": view.from_matches,
            "recipients": recipients,
            "recipients_column": "RCPT TO" if view.source == "smtp" else "Delivered-To",
            "bcc": [text(b, lim) for b in view.bcc[: self.limits.max_list]],
            "notes": [text(n, lim) for n in view.notes[:20]],
        }

    def _table(self, items: list[Any]) -> dict[str, Any] | None:
        """A list of flat dicts (e.g. SMTP transactions) as a table: columns are the union of keys."""
        rows = [i for i in items[: self.limits.max_list] if isinstance(i, dict)]
        if not rows:
            return None
        cols: list[str] = []
        for r in rows:
            cols.extend(k for k in r if k not in cols)
        cols = cols[:16]
        return {
            "cols": [text(_field_name(c), 40) for c in cols],
            "rows": [[text(_compact(r.get(c), self.words), self.limits.max_text) for c in cols] for r in rows],
            "hidden": max(0, len(items) - len(rows)),
        }

    def _tls(self, info: Any) -> dict[str, Any] | None:
        if not isinstance(info, dict):
            return None
        lim = self.limits.max_text
        simple = [
            (k, info.get(k))
            for k in (
                "version",
                "cipher",
                "sni",
                "alpn",
                "alpn_selected",
                "client_versions",
                "cipher_suites_offered",
                "resumed",
                "established",
                "decrypted",
                "handshake_seconds",
                "key_updates",
                "first_frame",
                "bytes",
            )
            if k in info
        ]
        certs = [
            {
                k: text(_compact(c.get(k), self.words), lim)
                for k in (
                    "subject",
                    "issuer",
                    "not_before",
                    "not_after",
                    "san",
                    "sha256",
                    "sent_by",
                    "serial",
                )
            }
            for c in (info.get("certificates") or [])[:20]
            if isinstance(c, dict)
        ]
        alerts = [
            {k: text(_compact(a.get(k)), 80) for k in ("direction", "level", "description", "frame")}
            for a in (info.get("alerts") or [])[:50]
            if isinstance(a, dict)
        ]
        return {
            "fields": [(_field_name(k), text(_compact(v, self.words), lim)) for k, v in simple],
            "certs": certs,
            "alerts": alerts,
            "anomalies": [text(a, 200) for a in (info.get("anomalies") or [])[:50]],
        }

    def _facts(self, data: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
        """Protocol-specific record keys (``smtp``, ``pop3``, ``imap``, and whatever is added later)."""
        out = []
        for key, value in data.items():
            if key in _KNOWN_KEYS:
                continue
            if isinstance(value, dict):
                items = [
                    (text(_field_name(k), 60), text(_compact(v, self.words), self.limits.max_text))
                    for k, v in list(value.items())[:40]
                ]
            else:
                items = [("value", text(_compact(value, self.words), self.limits.max_text))]
            out.append((text(key, 60), items))
        return out


_DATA_MARKER = "<!--mailtrace:data-->"


def _spool() -> IO[str]:
    return tempfile.TemporaryFile("w+", encoding="utf-8", errors="backslashreplace")


def _compact(value: Any, words: tuple[str, str] = ("yes", "no")) -> str:
    """A record's value as a reader reads it (not as JSON): ``client 1227 · server 2291`` for an object,
    its items joined for a list, ``words`` for true and false, ``—`` for nothing."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return words[0] if value else words[1]
    if isinstance(value, dict):
        parts = [f"{_field_name(k)} {_nested(v, words)}" for k, v in value.items()]
        return " · ".join(parts) or "—"
    if isinstance(value, (list, tuple)):
        joiner = "; " if any(isinstance(v, (dict, list, tuple)) for v in value) else ", "
        return joiner.join(_compact(v, words) for v in value) or "—"
    return str(value)


def _field_name(key: Any) -> str:
    """A record's field name as the page shows it: ``mail from``, not ``mail_from``."""
    return str(key).replace("_", " ")


def _nested(value: Any, words: tuple[str, str]) -> str:
    """A value inside an object: in parentheses when it has parts of its own."""
    shown = _compact(value, words)
    return f"({shown})" if isinstance(value, (dict, list, tuple)) and value and shown != "—" else shown


@dataclass(frozen=True, slots=True)
class EmbeddedFile:
    """An attachment's decoded bytes, kept for ``--embed-attachments``."""

    filename: str | None
    content_type: str
    size: int
    md5: str
    sha256: str
    data: bytes

    @property
    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    @property
    def download_name(self) -> str:
        return safe_filename(self.filename, f"attachment-{self.sha256[:12]}.bin")
