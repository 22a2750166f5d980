"""Small inline-SVG drawings for the HTML report: bar charts and the ladder (sequence) diagram.

Everything here returns :class:`markupsafe.Markup`. Numbers and class names are produced by this
module; every piece of text that may come from a capture goes through :func:`markupsafe.escape`
(after :func:`clean_text`), so nothing a peer sent can become markup. The drawings' own words come from
the catalogue (:mod:`mailtrace.render.catalog`) and their numbers are written the way the ``lang``
they are given writes them (``6.791 Bytes (73,0 %)`` in German). No ``style`` attributes are
written (the report's Content-Security-Policy allows only its own nonce'd stylesheet): colours come
from CSS classes, geometry from presentation attributes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from mailtrace.render.catalog import localize_number
from mailtrace.render.catalog import text as say

# Control characters and bidirectional overrides are shown, not obeyed: a forensic reader must see
# that a file name holds U+202E (the "gpj.exe" trick) or a NUL, and no text may reorder the page.
_VISIBLE: dict[int, int | str] = {i: 0x2400 + i for i in range(0x20) if i not in (0x09, 0x0A)}
_VISIBLE[0x7F] = 0x2421
for _cp in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C):
    _VISIBLE[_cp] = f"\u27e8U+{_cp:04X}\u27e9"
del _cp


SURROGATE = re.compile("[\ud800-\udfff]")
"""Lone surrogates: bytes that were not UTF-8, kept by ``surrogateescape``."""


def clean_text(text: str) -> str:
    """Text from a capture made safe to *show*: control and bidi characters become visible marks.

    Lone surrogates (bytes that were not UTF-8, kept by ``surrogateescape``) become ``\\xNN``.
    """
    out = text.translate(_VISIBLE)
    if SURROGATE.search(out):
        out = "".join(
            f"\\x{ord(ch) - 0xDC00:02x}"
            if "\udc80" <= ch <= "\udcff"
            else ("\ufffd" if "\ud800" <= ch <= "\udfff" else ch)
            for ch in out
        )
    return out


def text(value: object, limit: int) -> str:
    """Any value from a capture → display text: cleaned, cut with a note of how much was left out."""
    s = value if isinstance(value, str) else ("" if value is None else str(value))
    if len(s) > limit:
        s = s[:limit] + f"… [{len(s) - limit:,} more characters]"
    return clean_text(s)


def shorten(text: str, limit: int) -> str:
    """At most ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "\u2026"


def _trusted(parts: list[str]) -> Markup:
    """Markup assembled in this module: numbers, fixed names and escape()d text only."""
    return Markup("".join(parts))  # noqa: S704 - every capture value in parts went through escape()


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


# --------------------------------------------------------------------------- bar charts


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int
    css: str
    """CSS class of the bar (colour)."""


def bar_chart(bars: Sequence[Bar], *, title: str, width: int = 420, label_width: int = 130) -> Markup:
    """Horizontal bars with their counts, one per line (labels cut to fit ``label_width``; hover for all)."""
    if not bars:
        return Markup("")
    row_h, label_w, pad = 20, label_width, 4
    chars = max(8, label_w // 6)
    height = row_h * len(bars) + 2 * pad
    peak = max(b.value for b in bars) or 1
    room = width - label_w - 60
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for i, b in enumerate(bars):
        y = pad + i * row_h
        w = max(1.0, room * b.value / peak) if b.value else 0.0
        parts.append(
            f'<text class="lbl" x="{label_w - 6}" y="{y + 14}" text-anchor="end">'
            f"{escape(shorten(clean_text(b.label), chars))}</text>"
        )
        parts.append(
            f'<rect class="{escape(b.css)}" x="{label_w}" y="{y + 3}" width="{_num(w)}" height="{row_h - 6}">'
            f"<title>{escape(clean_text(b.label))}: {b.value}</title></rect>"
        )
        parts.append(f'<text class="val" x="{_num(label_w + w + 4)}" y="{y + 14}">{b.value}</text>')
    parts.append("</svg>")
    return _trusted(parts)


@dataclass(frozen=True, slots=True)
class Spread:
    """One row of a :func:`spread_chart`: a distribution by its median, 95th percentile and maximum."""

    label: str
    count: int
    median: float
    p95: float
    max: float


def spread_chart(
    rows: Sequence[Spread], *, title: str, width: int = 560, label_width: int = 150, lang: str = "en"
) -> Markup:
    """Latencies (seconds) on a logarithmic axis: a bar to the 95th percentile, a tick at the median, a dot
    at the maximum. Times from microseconds to hours fit one chart."""
    if not rows:
        return Markup("")
    row_h, top, bottom, right = 20, 6, 22, 12
    values = [v for r in rows for v in (r.median, r.p95, r.max) if v > 0]
    lo = 10 ** math.floor(math.log10(min(values))) if values else 1e-3
    hi = 10 ** math.ceil(math.log10(max(values))) if values else 1.0
    lo, hi = min(lo, 1e-3), max(hi, lo * 10)
    plot_w = width - label_width - right
    height = top + row_h * len(rows) + bottom

    def x(value: float) -> float:
        value = min(max(value, lo), hi)
        return label_width + plot_w * (math.log10(value) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    axis_y = top + row_h * len(rows)
    parts.append(f'<line class="axis" x1="{label_width}" y1="{axis_y}" x2="{width - right}" y2="{axis_y}"/>')
    decade = lo
    while decade <= hi * 1.0001:
        gx = _num(x(decade))
        parts.append(
            f'<line class="grid" x1="{gx}" y1="{top}" x2="{gx}" y2="{axis_y + 4}"/>'
            f'<text class="val" x="{gx}" y="{height - 6}" text-anchor="middle">{fmt_latency(decade, lang)}</text>'
        )
        decade *= 10
    for i, r in enumerate(rows):
        y = top + i * row_h
        x0, xm, xp, xx = x(lo), x(r.median), x(r.p95), x(r.max)
        tip = escape(
            say(
                "html.chart.spread.tip",
                lang,
                label=clean_text(r.label),
                count=r.count,
                median=fmt_latency(r.median, lang),
                p95=fmt_latency(r.p95, lang),
                max=fmt_latency(r.max, lang),
            )
        )
        parts.append(
            f'<g class="spread"><title>{tip}</title>'
            f'<text class="lbl" x="{label_width - 6}" y="{y + 14}" text-anchor="end">'
            f"{escape(shorten(clean_text(r.label), max(8, label_width // 6)))}</text>"
            f'<rect class="p95" x="{_num(x0)}" y="{y + 5}" width="{_num(max(1.0, xp - x0))}" height="{row_h - 10}"/>'
            f'<line class="median" x1="{_num(xm)}" y1="{y + 2}" x2="{_num(xm)}" y2="{y + row_h - 2}"/>'
            f'<rect class="max" x="{_num(xx - 2.5)}" y="{_num(y + row_h / 2 - 2.5)}" width="5" height="5"/></g>'
        )
    parts.append("</svg>")
    return _trusted(parts)


_LATENCY_UNITS = ((1e-6, "µs", 1e-3), (1e-3, "ms", 1.0), (1.0, "s", 600.0), (60.0, "min", 36_000.0))
"""(seconds per unit, unit, below this many seconds): a delay is written in the first unit it is below."""


def fmt_latency(value: float, lang: str = "en") -> str:
    """``322 µs``, ``1.07 ms``, ``4.62 s``, ``16.7 min``, ``20.0 h`` (``1,07 ms`` in German). Three significant
    digits, the unit chosen after rounding: 0.9997 s is ``1 s``, not ``1e+03 ms``."""
    if value <= 0:
        return "0"
    for scale, unit, below in _LATENCY_UNITS:
        if value < below:
            shown = f"{value / scale:.3g}"
            if "e" not in shown and float(shown) < 1000:
                return localize_number(f"{shown} {unit}", lang)
    return localize_number(f"{value / 3600:,.1f} h", lang)


def share_bar(parts_: Sequence[Bar], *, title: str, width: int = 420, unit: str = "", lang: str = "en") -> Markup:
    """One bar split into shares (e.g. decoded content and base64 overhead), with a legend below."""
    total = sum(b.value for b in parts_)
    if total <= 0:
        return Markup("")
    height = 46
    out = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    x = 0.0
    legend_x = 0.0
    for b in parts_:
        w = width * b.value / total
        share = b.value / total * 100
        label = say("st.share", lang, label=clean_text(b.label), value=b.value, unit=unit, share=share)
        out.append(
            f'<rect class="{escape(b.css)}" x="{_num(x)}" y="2" width="{_num(w)}" height="18">'
            f"<title>{escape(label)}</title></rect>"
            f'<rect class="{escape(b.css)}" x="{_num(legend_x)}" y="30" width="10" height="10"/>'
            f'<text class="lbl" x="{_num(legend_x + 14)}" y="39">{escape(shorten(label, 48))}</text>'
        )
        x += w
        legend_x += width / max(1, len(parts_))
    out.append("</svg>")
    return _trusted(out)


def _nice_step(span: float, target: int) -> float:
    raw = span / max(1, target)
    if raw <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * mag >= raw:
            return float(m * mag)
    return float(10 * mag)


def timeline_chart(
    starts: Sequence[tuple[float, str]],
    t0: float,
    t1: float,
    *,
    protocols: Sequence[str],
    bins: int = 40,
    width: int = 640,
    height: int = 150,
    lang: str = "en",
) -> Markup:
    """Sessions started per time bin, stacked by protocol; x is seconds since the capture began."""
    if not starts:
        return Markup("")
    span = max(t1 - t0, 1e-6)
    counts = {p: [0] * bins for p in protocols}
    for ts, proto in starts:
        i = min(bins - 1, max(0, int((ts - t0) / span * bins)))
        counts.setdefault(proto, [0] * bins)[i] += 1
    totals = [sum(c[i] for c in counts.values()) for i in range(bins)]
    peak = max(totals) or 1
    left, bottom, top, right = 36, 22, 8, 8
    plot_w, plot_h = width - left - right, height - bottom - top
    bw = plot_w / bins
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(say("html.chart.timeline.title", lang))}</title>',
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}"/>',
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}"/>',
        f'<text class="val" x="{left - 4}" y="{top + 10}" text-anchor="end">{peak}</text>',
        f'<text class="val" x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    step = _nice_step(span, 6)
    tick = 0.0
    while tick <= span + 1e-9:
        x = left + plot_w * tick / span
        parts.append(
            f'<line class="tick" x1="{_num(x)}" y1="{top + plot_h}" x2="{_num(x)}" y2="{top + plot_h + 4}"/>'
            f'<text class="val" x="{_num(x)}" y="{height - 6}" text-anchor="middle">{_fmt_secs(tick, lang)}</text>'
        )
        tick += step
    for i in range(bins):
        y = float(top + plot_h)
        for proto, series in counts.items():
            n = series[i]
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            lo = t0 + span * i / bins
            tip = say("html.chart.timeline.tip", lang, protocol=proto.upper(), n=n, start=_fmt_secs(lo - t0, lang))
            parts.append(
                f'<rect class="p-{escape(proto)}" x="{_num(left + i * bw + 0.5)}" y="{_num(y)}" '
                f'width="{_num(max(bw - 1, 0.5))}" height="{_num(h)}"><title>{escape(tip)}</title></rect>'
            )
    parts.append("</svg>")
    return _trusted(parts)


def _fmt_secs(value: float, lang: str = "en") -> str:
    """``0.6935s``, ``2.5m``, ``1.2h`` (``0,6935 s``, ``2,5 min``, ``1,2 h`` in German)."""
    if value >= 3600:
        key, value = "html.chart.hours", value / 3600
    elif value >= 60:
        key, value = "html.chart.minutes", value / 60
    else:
        key = "html.chart.secs"
    return say(key, lang, v=localize_number(f"{value:.4g}", lang))


# --------------------------------------------------------------------------- ladder diagram


@dataclass(frozen=True, slots=True)
class Arrow:
    """One line of the ladder: an arrow between the lifelines or a note across them."""

    kind: str
    """``c2s``, ``s2c`` (arrows), ``mark`` (a line across both lifelines, e.g. TLS starts) or ``note``
    (text between the lifelines, e.g. a login's outcome)."""
    label: str
    rel: float
    """Seconds since the session's first packet."""
    phase: str
    frame: int
    css: str = ""
    """Extra class: ``tcp``, ``data``, ``tls``, ``bad``, ``ok``."""
    tooltip: str = ""


LADDER_WIDTH = 780
_TIME_X, _CLIENT_X, _SERVER_X = 6, 200, 640
_ROW_H, _HEAD_H = 24, 44


def ladder(
    arrows: Sequence[Arrow],
    *,
    client: str,
    server: str,
    sid: int,
    decrypted: frozenset[int] = frozenset(),
    label_chars: int = 64,
    phase_names: Mapping[str, str] | None = None,
    title: str | None = None,
    frame_tip: Callable[[int, str, str], str] | None = None,
    lang: str = "en",
) -> Markup:
    """Client and server lifelines, one arrow per command, reply or TCP control packet, phases as bands.

    Arrows of frames in ``decrypted`` (read through TLS with the key log) get a lock bar on the left.
    """
    n = len(arrows)
    height = _HEAD_H + n * _ROW_H + 16
    mid = (_CLIENT_X + _SERVER_X) / 2
    parts: list[str] = [
        f'<svg class="ladder" role="img" viewBox="0 0 {LADDER_WIDTH} {height}" width="{LADDER_WIDTH}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg" aria-labelledby="ladder-t{sid}">'
        f'<title id="ladder-t{sid}">'
        + str(escape(clean_text(title or say("html.ladder.title", lang, client=client, server=server))))
        + "</title>"
    ]
    # phase bands first, so everything else is drawn on top
    i = 0
    while i < n:
        j = i
        while j + 1 < n and arrows[j + 1].phase == arrows[i].phase:
            j += 1
        y0 = _HEAD_H + i * _ROW_H - 4
        y1 = _HEAD_H + (j + 1) * _ROW_H - 4
        phase = escape(arrows[i].phase)
        name = escape((phase_names or {}).get(arrows[i].phase, arrows[i].phase))
        parts.append(
            f'<rect class="band ph-{phase}" x="80" y="{y0}" width="{LADDER_WIDTH - 84}" height="{y1 - y0}"/>'
            f'<text class="band-lbl" x="86" y="{y0 + 13}">{name}</text>'
        )
        i = j + 1
    who_client, who_server = escape(say("html.ladder.client", lang)), escape(say("html.ladder.server", lang))
    parts.append(
        f'<text class="who" x="{_CLIENT_X}" y="16" text-anchor="middle">{who_client}</text>'
        f'<text class="addr" x="{_CLIENT_X}" y="32" text-anchor="middle">'
        f"{escape(shorten(clean_text(client), 40))}</text>"
        f'<text class="who" x="{_SERVER_X}" y="16" text-anchor="middle">{who_server}</text>'
        f'<text class="addr" x="{_SERVER_X}" y="32" text-anchor="middle">'
        f"{escape(shorten(clean_text(server), 40))}</text>"
        f'<line class="life" x1="{_CLIENT_X}" y1="{_HEAD_H - 6}" x2="{_CLIENT_X}" y2="{height - 4}"/>'
        f'<line class="life" x1="{_SERVER_X}" y1="{_HEAD_H - 6}" x2="{_SERVER_X}" y2="{height - 4}"/>'
    )
    decrypted_tip = escape(say("html.ladder.decrypted", lang))
    for k, a in enumerate(arrows):
        y = _HEAD_H + k * _ROW_H + 12
        label = escape(shorten(clean_text(a.label), label_chars))
        what = clean_text(a.tooltip or a.label)
        rel = f"{a.rel:.6f}"
        tip = escape(
            frame_tip(a.frame, rel, what)
            if frame_tip
            else say("html.ladder.tip", lang, frame=a.frame, rel=rel, tip=what)
        )
        css = f"{a.kind} {escape(a.css)}".strip()
        parts.append(
            f'<g class="{css}"><title>{tip}</title>'
            f'<text class="t" x="{_TIME_X}" y="{y + 4}">+{a.rel:.6f}</text>'
        )
        if a.frame in decrypted:
            parts.append(
                f'<rect class="dec" x="{_CLIENT_X - 14}" y="{y - 12}" width="5" height="{_ROW_H}">'
                f"<title>{decrypted_tip}</title></rect>"
            )
        if a.kind in ("c2s", "s2c"):
            x1, x2 = (_CLIENT_X, _SERVER_X) if a.kind == "c2s" else (_SERVER_X, _CLIENT_X)
            tip_x = x2 - 8 if a.kind == "c2s" else x2 + 8
            parts.append(
                f'<line class="arr" x1="{x1}" y1="{y}" x2="{tip_x}" y2="{y}"/>'
                f'<path class="head" d="M{x2} {y} L{tip_x} {y - 4} L{tip_x} {y + 4} Z"/>'
                f'<text class="msg" x="{mid}" y="{y - 4}" text-anchor="middle">{label}</text>'
            )
        elif a.kind == "mark":
            parts.append(
                f'<line class="markline" x1="{_CLIENT_X - 30}" y1="{y}" x2="{_SERVER_X + 30}" y2="{y}"/>'
                f'<text class="msg" x="{mid}" y="{y - 4}" text-anchor="middle">{label}</text>'
            )
        else:
            parts.append(f'<text class="note" x="{mid}" y="{y + 4}" text-anchor="middle">{label}</text>')
        parts.append(
            f'<text class="fr" x="{LADDER_WIDTH - 6}" y="{y + 4}" text-anchor="end">{a.frame}</text></g>'
        )
    parts.append("</svg>")
    return _trusted(parts)
