"""The statistics section of the HTML report, drawn from the ``stats`` key of the JSON report.

:func:`stats_view` turns that plain data (``Statistics.to_json()``, the same document ``analyze
--format json`` writes) into what ``stats.html.j2`` shows: the SMTP reply matrix (class 2yz…5yz
by category x0z…x5z, RFC 5321 §4.2.1), enhanced codes with their meaning, command frequencies,
top senders, recipients and domains, latency and duration spreads, messages and attachments with
the base64 overhead, logins, spam defences and the findings by id. Nothing is recomputed from the
sessions. Every string that may come from a capture (verbs, addresses, codes, reply texts) goes
through :func:`~mailtrace.render.svg.text`; the charts escape what they draw.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from mailtrace.protocols import BY_NAME
from mailtrace.protocols.smtp_codes import explain_reply
from mailtrace.render.catalog import Words, words
from mailtrace.render.svg import Bar, Spread, bar_chart, share_bar, spread_chart, text

__all__ = ["stats_view"]

_CLASS_CSS = {"1": "mid", "2": "ok", "3": "mid", "4": "warn", "5": "bad"}
_TOP = 12
"""Bars per chart (the JSON report has the full counts)."""
_LABEL = 80
"""Characters of one label from a capture (an address, a verb)."""


def stats_view(stats: dict[str, Any], *, lang: str = "en") -> dict[str, Any]:
    """What the statistics section shows, from the JSON report's ``stats`` object."""
    t = words(lang)
    return {
        "replies": _replies(stats.get("smtp_replies") or {}, lang, t),
        "responses": _responses(stats, t),
        "commands": _commands(stats.get("commands") or {}, t),
        "addresses": _addresses(stats.get("addresses") or {}, t),
        "peers": _peers(stats, t),
        "timing": _timing(stats, lang, t),
        "messages": _messages(stats.get("messages") or {}, lang, t),
        "auth": _auth(stats.get("auth") or {}, t),
        "protocols": _protocols(stats),
        "spam": _spam(stats.get("spam") or {}, t),
        "findings": _findings(stats.get("findings") or {}),
        "approximate": [text(a, 40) for a in stats.get("approximate") or []],
    }


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _items(counts: Any, t: Words, limit: int = _TOP) -> list[tuple[str, int]]:
    """A {key: count} or [{value, count}] or [[key, count]] object as (label, count), largest first.

    Beyond ``limit`` the rest is one line: "3 others" (``st.others``)."""
    pairs: list[tuple[str, int]] = []
    if isinstance(counts, dict):
        pairs = [(str(k), _int(v)) for k, v in counts.items()]
    elif isinstance(counts, list):
        for item in counts:
            if isinstance(item, dict):
                pairs.append((str(item.get("value")), _int(item.get("count"))))
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                pairs.append((str(item[0]), _int(item[1])))
    pairs.sort(key=lambda kv: (-kv[1], kv[0]))
    out = [(text(k, _LABEL), n) for k, n in pairs[:limit]]
    rest = sum(n for _, n in pairs[limit:])
    if rest:
        out.append((t("st.others", n=len(pairs) - limit), rest))
    return out


def _chart(
    t: Words, counts: Any, title: str, css: str = "mid", *, label_width: int = 130, width: int = 420
) -> Markup:
    return bar_chart(
        [Bar(label, n, css) for label, n in _items(counts, t)], title=title, label_width=label_width, width=width
    )


# --------------------------------------------------------------------------- replies


def _replies(replies: dict[str, Any], lang: str, t: Words) -> dict[str, Any] | None:
    codes = {c: _int(n) for c, n in (replies.get("codes") or {}).items() if len(c) == 3 and c.isdigit()}
    if not codes:
        return None
    categories = sorted({c[1] for c in codes})
    firsts = sorted({c[0] for c in codes})
    totals = {(f, d): sum(v for c, v in codes.items() if c[:2] == f + d) for f in firsts for d in categories}
    peak = max(totals.values()) or 1
    rows = []
    for first in firsts:
        cells: list[dict[str, Any]] = []
        for d in categories:
            n = totals[(first, d)]
            listed = ", ".join(f"{c} ×{v}" for c, v in sorted(codes.items()) if c[:2] == first + d)
            cells.append({"n": n, "heat": 0 if not n else 1 + min(3, int(4 * n / (peak + 1))), "codes": listed})
        rows.append(
            {
                "label": f"{first}yz",
                "meaning": _digit(first + "00", lang, "outcome"),
                "css": _CLASS_CSS.get(first, "mid"),
                "cells": cells,
                "total": sum(totals[(first, d)] for d in categories),
                "codes": [(c, v, _meaning(c, lang)) for c, v in sorted(codes.items()) if c[0] == first],
            }
        )
    enhanced = []
    for code, n in sorted((replies.get("enhanced") or {}).items())[:60]:
        meaning = explain_reply(f"{code[:1]}00", code, lang) if code[:1] in "245" else None
        enhanced.append((text(code, 20), _int(n), meaning.enhanced_meaning if meaning else None))
    classes = [
        Bar(f"{c} {_digit(c[0] + '00', lang, 'outcome')}".strip(), _int(n), _CLASS_CSS.get(c[0], "mid"))
        for c, n in sorted((replies.get("classes") or {}).items())
        if c[:1].isdigit()
    ]
    return {
        "categories": [(f"x{d}z", _digit(f"2{d}0", lang, "category")) for d in categories],
        "rows": rows,
        "enhanced": enhanced,
        "classes_chart": bar_chart(classes, title=t("st.replies_by_class"), label_width=230, width=480),
    }


def _digit(code: str, lang: str, what: str) -> str:
    """What the first (``outcome``) or second (``category``) digit of a reply code says."""
    m = explain_reply(code, "", lang)
    return str(getattr(m, what)) if m is not None else "?"


def _meaning(code: str, lang: str) -> str:
    m = explain_reply(code, "", lang)
    return (m.meaning or m.outcome) if m is not None else ""


def _responses(stats: dict[str, Any], t: Words) -> Markup:
    bars = []
    for status, n in (stats.get("pop3_responses") or {}).items():
        css = "ok" if status == "+OK" else ("bad" if status == "-ERR" else "mid")
        bars.append(Bar(f"POP3 {text(status, 20)}", _int(n), css))
    imap = stats.get("imap_responses") or {}
    for status, n in (imap.get("tagged") or {}).items():
        css = {"OK": "ok", "NO": "warn", "BAD": "bad"}.get(status, "mid")
        bars.append(Bar(f"IMAP {text(status, 20)} " + t("st.tagged"), _int(n), css))
    for group in ("untagged", "continuation"):
        for status, n in list((imap.get(group) or {}).items())[:_TOP]:
            bars.append(Bar(f"IMAP {text(status, 20)}" + (" " + t("st.untagged") if group == "untagged" else ""),
                            _int(n), "mid"))
    return bar_chart(bars, title=t("st.responses"), label_width=190)


# --------------------------------------------------------------------------- commands, peers, addresses


def _commands(commands: dict[str, Any], t: Words) -> list[tuple[str, Markup]]:
    out = []
    for protocol in sorted(commands):
        counts = commands[protocol]
        if isinstance(counts, dict) and counts:
            name = text(protocol, 20).upper()
            out.append((name, _chart(t, counts, t("st.commands", name=name), f"p-{_css_name(protocol)}")))
    return out


def _css_name(protocol: str) -> str:
    return protocol if protocol in BY_NAME else "other"


def _addresses(addresses: dict[str, Any], t: Words) -> list[tuple[str, Markup]]:
    titles = [(key, t("st." + key)) for key in ("senders", "recipients", "sender_domains", "recipient_domains",
                                                 "header_from")]
    return [
        (title, _chart(t, addresses[key], title, label_width=230, width=480))
        for key, title in titles
        if addresses.get(key)
    ]


def _peers(stats: dict[str, Any], t: Words) -> list[tuple[str, Markup]]:
    servers = [
        {"value": f"{s.get('server')} ({str(s.get('protocol') or '').upper()})", "count": s.get("sessions")}
        for s in stats.get("servers") or []
        if isinstance(s, dict)
    ]
    clients = [
        {"value": c.get("client"), "count": c.get("sessions")}
        for c in stats.get("clients") or []
        if isinstance(c, dict)
    ]
    out = []
    if servers:
        title = t("st.per_server")
        out.append((title, _chart(t, servers, title, label_width=230, width=480)))
    if clients:
        title = t("st.per_client")
        out.append((title, _chart(t, clients, title, label_width=230, width=480)))
    return out


# --------------------------------------------------------------------------- timing


def _spread(label: str, s: Any) -> Spread | None:
    if not isinstance(s, dict) or not _int(s.get("count")):
        return None
    try:
        return Spread(label, _int(s["count"]), float(s["median"]), float(s["p95"]), float(s["max"]))
    except (KeyError, TypeError, ValueError):
        return None


def _timing(stats: dict[str, Any], lang: str, t: Words) -> dict[str, Any] | None:
    latency: list[Spread] = []
    for protocol, verbs in sorted((stats.get("latency") or {}).items()):
        if not isinstance(verbs, dict):
            continue
        ranked = sorted(verbs.items(), key=lambda kv: -_int(kv[1].get("count") if isinstance(kv[1], dict) else 0))
        for verb, s in ranked[:_TOP]:
            what = t("st.end_of_data") if verb == "." else verb
            row = _spread(f"{text(protocol, 20).upper()} {text(what, 40)}", s)
            if row is not None:
                latency.append(row)
    durations = [
        row
        for protocol, s in sorted((stats.get("durations") or {}).items())
        if (row := _spread(t("st.session", protocol=text(protocol, 20).upper()), s)) is not None
    ]
    if not latency and not durations:
        return None
    sampled = any(
        isinstance(s, dict) and s.get("sampled")
        for verbs in (stats.get("latency") or {}).values()
        if isinstance(verbs, dict)
        for s in verbs.values()
    )
    return {
        "latency": latency,
        "durations": durations,
        "latency_chart": spread_chart(latency, title=t("st.latency"), lang=lang),
        "duration_chart": spread_chart(durations, title=t("st.durations"), lang=lang),
        "sampled": sampled,
    }


# --------------------------------------------------------------------------- messages, logins, protocols


def _messages(m: dict[str, Any], lang: str, t: Words) -> dict[str, Any] | None:
    if not _int(m.get("count")):
        return None
    attachments = m.get("attachments") or {}
    b64 = m.get("base64") or None
    overhead = None
    if isinstance(b64, dict) and _int(b64.get("encoded_bytes")):
        overhead = share_bar(
            [
                Bar(t("st.decoded"), _int(b64.get("decoded_bytes")), "ok"),
                Bar(t("st.overhead"), _int(b64.get("overhead_bytes")), "warn"),
            ],
            title=t("st.overhead_title"),
            unit=" " + t("st.bytes_unit"),
            width=480,
            lang=lang,
        )
    return {
        "count": _int(m.get("count")),
        "complete": _int(m.get("complete")),
        "origins": _items(m.get("by_origin") or {}, t),
        "size": m.get("size") if isinstance(m.get("size"), dict) else None,
        "attachments": _int(attachments.get("count")),
        "attachment_bytes": _int(attachments.get("bytes")),
        "attachment_size": attachments.get("size") if isinstance(attachments.get("size"), dict) else None,
        "types_chart": _chart(t, attachments.get("types") or {}, t("st.attachment_types"), label_width=190),
        "base64": b64 if isinstance(b64, dict) else None,
        "overhead_chart": overhead,
    }


def _auth(a: dict[str, Any], t: Words) -> dict[str, Any] | None:
    if not _int(a.get("attempts")):
        return None
    return {
        "attempts": _int(a.get("attempts")),
        "cleartext": _int(a.get("cleartext")),
        "outcomes": _items(a.get("outcomes") or {}, t),
        "mechanisms": _items(a.get("mechanisms") or {}, t),
        "users": _items(a.get("users") or [], t),
    }


def _protocols(stats: dict[str, Any]) -> dict[str, Any]:
    hierarchy = [
        {
            "indent": min(_int(h.get("level")), 6),
            "name": text(h.get("name"), 40),
            "packets": _int(h.get("packets")),
            "bytes": h.get("bytes") if isinstance(h.get("bytes"), int) else None,
        }
        for h in stats.get("hierarchy") or []
        if isinstance(h, dict)
    ]
    rows = [
        {
            "protocol": text(p.get("protocol"), 20).upper(),
            "sessions": _int(p.get("sessions")),
            "packets": _int(p.get("packets")),
            "payload": _int(p.get("payload_bytes")),
            "tls": _int(p.get("tls_sessions")),
            "tls_share": float(p.get("tls_share") or 0.0) * 100,
            "decrypted": _int(p.get("decrypted_sessions")),
            "ipv6": _int(p.get("ipv6_sessions")),
        }
        for p in stats.get("protocols") or []
        if isinstance(p, dict)
    ]
    return {"hierarchy": hierarchy, "rows": rows}


def _spam(spam: dict[str, Any], t: Words) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = [(t("st.spam.verdicts"), str(_int(spam.get("messages_with_verdicts"))))]
    for key in ("spf", "dkim", "dmarc", "arc"):
        for result, n in _items(spam.get(key) or {}, t):
            rows.append((f"{key.upper()} {result}", str(n)))
    for domain, n in _items(spam.get("dkim_domains") or [], t):
        rows.append((t("st.spam.dkim_signed", domain=domain), str(n)))
    rows.append((t("st.spam.flagged"), str(_int(spam.get("spam_flagged")))))
    for category, n in _items(spam.get("rejections") or {}, t):
        rows.append((t("st.spam.refused", category=category), str(n)))
    rows.append((t("st.spam.relay"), str(_int(spam.get("relay_denied")))))
    rows.append((t("st.spam.unknown"), str(_int(spam.get("unknown_recipients")))))
    rows.append((t("st.spam.deferred"), str(_int(spam.get("greylist_deferrals")))))
    greylisting = spam.get("greylisting")
    if isinstance(greylisting, dict):
        rows.append((t("st.spam.grey_retried"), str(_int(greylisting.get("retried_accepted")))))
        rows.append((t("st.spam.grey_not"), str(_int(greylisting.get("not_retried")))))
    dnsbl = spam.get("dnsbl")
    if isinstance(dnsbl, dict):
        rows.append((t("st.spam.dnsbl"), str(_int(dnsbl.get("lookups")))))
        for key in ("listed", "not_listed", "unanswered", "other"):
            if _int(dnsbl.get(key)) or key in ("listed", "not_listed"):
                rows.append((t("st.spam.dnsbl." + key), str(_int(dnsbl.get(key)))))
        zones = dnsbl.get("by_zone")
        if isinstance(zones, dict):
            for zone, counts in list(zones.items())[:_TOP]:
                if isinstance(counts, dict):
                    rows.append((t("st.spam.zone", zone=text(zone, _LABEL)),
                                 t("st.spam.zone_value", lookups=_int(counts.get("lookups")),
                                   listed=_int(counts.get("listed")))))
    return rows


def _findings(summary: dict[str, Any]) -> list[tuple[str, dict[str, int]]]:
    by_id = summary.get("by_id") or {}
    return [
        (text(k, 60), {s: _int(v.get(s)) for s in ("high", "medium", "low", "info")})
        for k, v in sorted(by_id.items())
        if isinstance(v, dict)
    ]
