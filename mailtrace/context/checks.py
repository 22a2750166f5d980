"""Conclusions that come for free once a session's context is known (pure, over the Session).

* ``fcrdns``: the client's address has a PTR name, and that name resolves back to the address
  (forward-confirmed reverse DNS, RFC 8601 ``iprev``) — or it has no PTR, or the name does not lead
  back;
* ``helo``: the HELO/EHLO name is (not) the client's confirmed name;
* ``mx-route``: a relay went to an MX host that DNS returned for the recipient domain, and whether
  it was the most preferred one;
* ``nxdomain``: a server refused a command (4xx/5xx) right after DNS said the domain does not exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailtrace.context.model import DNS, ContextCheck, ContextObservation

if TYPE_CHECKING:
    from mailtrace.session import Session


def context_checks(session: Session) -> list[ContextCheck]:
    out: list[ContextCheck] = []
    context = [o for o in session.context if o.kind == DNS]
    out += _fcrdns(session, context)
    out += _mx_route(session, context)
    out += _nxdomain(session, context)
    return out


def _check(check: str, result: str, frames: list[int], **params: object) -> ContextCheck:
    return ContextCheck(check, result, tuple((k, str(v)) for k, v in params.items()),
                        tuple(sorted(set(frames))))


def _fcrdns(session: Session, context: list[ContextObservation]) -> list[ContextCheck]:
    client = session.client.ip
    ptrs = [o for o in context if o.purpose == "client-ptr" and o.qtype == "PTR" and o.answered]
    if not ptrs:
        return []
    ptr = ptrs[0]
    names = [r.data.lower() for o in ptrs for r in o.answers if r.rtype == "PTR"]
    if not names:
        if any(o.cut for o in ptrs):
            return []  # the answer was cut off by the snap length: a name may have been in it
        return [_check("fcrdns", "no-ptr", [ptr.frame], client=client, rcode=ptr.rcode or "")]
    forwards = [o for o in context if o.qtype in ("A", "AAAA") and o.answered and (o.query or "").lower() in names]
    confirmed = [n for n in names if any(client in o.addresses() for o in forwards if (o.query or "").lower() == n)]
    frames = [ptr.frame] + [o.frame for o in forwards]
    out: list[ContextCheck] = []
    if confirmed:
        out.append(_check("fcrdns", "ok", frames, client=client, name=confirmed[0]))
    elif forwards and not any(o.cut for o in forwards):  # a cut answer may have held the address
        found = sorted({a for o in forwards for a in o.addresses()})
        out.append(_check("fcrdns", "unconfirmed", frames, client=client, name=names[0],
                          addresses=", ".join(found) or "-"))
    helo = (session.helo or "").strip().strip("[]").rstrip(".").lower()
    if helo and helo != client.lower():
        name = confirmed[0] if confirmed else names[0]
        result = "ok" if helo in names else "differs"
        out.append(_check("helo", result, [ptr.frame], helo=helo, name=name, client=client))
    return out


def _mx_route(session: Session, context: list[ContextObservation]) -> list[ContextCheck]:
    lookups = [o for o in context if o.purpose == "mx" and o.answered]
    if not lookups:
        return []
    server = session.server.ip
    addresses: dict[str, set[str]] = {}
    for o in context:
        for r in (*o.answers, *o.additional):
            if r.rtype in ("A", "AAAA"):
                addresses.setdefault(r.name.lower(), set()).add(r.data)
        if o.qtype in ("A", "AAAA", "ANY") and o.query:  # through CNAMEs: the name asked for has them too
            addresses.setdefault(o.query.lower(), set()).update(o.addresses())
    out: list[ContextCheck] = []
    seen: set[str] = set()
    for o in reversed(lookups):  # the latest lookup of a domain is the one the connection followed
        domain = (o.query or "").lower()
        if domain in seen:
            continue
        seen.add(domain)
        records = sorted((r for r in o.answers if r.rtype == "MX"), key=lambda r: r.preference or 0)
        if not records:
            continue
        best = records[0].preference or 0
        chosen = [r for r in records if server in addresses.get(r.data.lower(), set())]
        frames = [o.frame] + [x.frame for x in context if x.purpose == "mx-host"]
        if chosen:
            host = chosen[0]
            result = "ok" if (host.preference or 0) == best else "backup-mx"
            out.append(_check("mx-route", result, frames, domain=domain, host=host.data, address=server,
                              preference=host.preference, best=best))
        elif not any(x.cut for x in context if x is o or x.purpose == "mx-host"):  # else: not known
            hosts = ", ".join(f"{r.data} ({r.preference})" for r in records)
            out.append(_check("mx-route", "not-mx", frames, domain=domain, address=server, hosts=hosts))
    out.reverse()
    return out


def _nxdomain(session: Session, context: list[ContextObservation]) -> list[ContextCheck]:
    out: list[ContextCheck] = []
    seen: set[str] = set()
    for o in context:
        if o.rcode != "NXDOMAIN" or o.role != "server" or o.purpose not in (
                "sender-domain", "recipient-domain", "command"):
            continue
        after = o.response_frame or o.frame
        reply = next((r for r in session.replies if r.frame > after and r.answers), None)
        if reply is None or reply.status[:1] not in ("4", "5") or o.subject in seen:
            continue
        seen.add(o.subject)
        out.append(_check("nxdomain", "refused", [o.frame, o.response_frame or o.frame, reply.frame],
                          domain=o.subject, verb=reply.answers or "", status=reply.status,
                          reply=(reply.status + " " + reply.text).strip()))
    return out
