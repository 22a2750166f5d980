"""Every sentence the text views print, by message id: one catalogue per language.

Captions, header and summary words live here and nowhere else, so a translation is one more
dictionary (``CATALOGS["de"] = DE``, :mod:`mailtrace.render.catalog_de`) and no code change.
Values are ``str.format`` templates; a pair ``(singular, plural)`` is chosen by the ``n`` parameter.
A key missing from a translation falls back to English; a placeholder missing from the parameters
shows as ``?`` rather than failing, because a caption must never stop a report.

Caption keys of a command follow one pattern (see :mod:`mailtrace.render.captions`): ``<key>`` is
the action ("the client opens the mailbox {mailbox} (SELECT)"), ``<key>.ok`` the action with its
result when the server said yes, ``<key>.fail``/``<key>.noreply`` override the generic
``outcome.*`` sentences that wrap the action otherwise.
"""

from __future__ import annotations

from string import Formatter
from typing import Any

from mailtrace.render.catalog_de import DE

Message = str | tuple[str, str]

EN: dict[str, Message] = {
    # ------------------------------------------------------------------ TCP
    "setup": "TCP connection set up from the {role} {client} to the mail server ({flags})",
    "setup.unanswered": "the {role} {client} tries to connect to the mail server ({flags}); "
                        "no answer in the capture",
    "setup.no_synack": "TCP connection set up from the {role} {client} to the mail server ({flags}); "
                       "the SYN/ACK is missing from the capture",
    "role.user_agent": "user agent",
    "role.client": "client",
    "side.client": "client",
    "side.server": "server",
    "tcp.fin": "TCP teardown (FIN); the {side} closes first",
    "tcp.fin_rst": "TCP teardown (FIN); the {side} closes first, "
                   "then the {rst_side} resets the connection (RST)",
    "tcp.fin_rst.same": "TCP teardown (FIN); the {side} closes first, then resets the connection (RST)",
    "tcp.rst": "the {side} resets the connection (RST)",
    "tcp.midstream": "the capture starts in the middle of the connection (no TCP handshake)",
    "tcp.acks": "TCP acknowledgements",
    "tcp.data": ("data the mail protocol does not explain ({bytes} byte)",
                 "data the mail protocol does not explain ({bytes} bytes)"),
    "gap": ("{nbytes} byte from the {side} is missing from the capture",
            "{nbytes} bytes from the {side} are missing from the capture"),
    "repeat": "{caption} (×{n})",
    # ------------------------------------------------------------------ outcomes
    "outcome.refused": "{action}; the server refuses: {reply}",
    "outcome.temporary": "{action}; the server refuses for now: {reply}",
    "outcome.noreply": "{action}; no reply in the capture",
    "outcome.accepted": "{action}; the server accepts ({status})",
    # ------------------------------------------------------------------ greeting, generic
    "greeting.ok": "the server is ready to talk ({status})",
    "smtp.greeting.ok": "the server is ready to talk ({status})",
    "pop3.greeting.ok": "the server is ready to talk ({status}) → AUTHORIZATION state",
    "greeting.apop": "the server is ready to talk ({status}) → AUTHORIZATION state; "
                     "its timestamp makes APOP possible",
    "greeting.preauth": "the server is ready to talk and the user is already logged in (PREAUTH)",
    "greeting.fail": "the server refuses to talk: {reply}",
    "unsolicited": "the server speaks unasked: {reply}",
    "server.closes": "the server ends the session: {reply}",
    "generic": "the client sends {verb}",
    "generic.ok": "the client sends {verb}; the server accepts ({status})",
    "unknown": "unknown command {verb}",
    "continuation": "the client continues its command",
    # ------------------------------------------------------------------ TLS
    "starttls": "the client asks for encryption ({verb})",
    "starttls.ok": "the client asks for encryption ({verb}); the server agrees ({status})",
    "tls.handshake": "TLS handshake: from here on the session is encrypted ({details})",
    "tls.handshake.decrypted": "TLS handshake: from here on the session is encrypted ({details}) — "
                               "decrypted with the key log",
    "tls.implicit": "TLS handshake right after the TCP setup (implicit TLS on port {port}): "
                    "from here on the session is encrypted ({details})",
    "tls.implicit.decrypted": "TLS handshake right after the TCP setup (implicit TLS on port {port}): "
                              "from here on the session is encrypted ({details}) — "
                              "decrypted with the key log",
    "tls.opaque": ("encrypted application data ({n} packet, {bytes} bytes): without the keys the mail "
                   "protocol cannot be read",
                   "encrypted application data ({n} packets, {bytes} bytes): without the keys the mail "
                   "protocol cannot be read"),
    "tls.alert": "the {side} ends TLS ({description} alert)",
    "tls.alert.fatal": "TLS fails: the {side} sends a fatal {description} alert",
    "tls.notes": "TLS: {text}",
    "tls.sni": "SNI {sni}",
    "tls.unknown": "version and cipher not seen",
    "note.tunnel": "the connection goes through a proxy: {text}",
    # ------------------------------------------------------------------ authentication
    "auth": "the client authenticates with {method}{as_user} — {channel}",
    "auth.ok": "the client authenticates with {method}{as_user} — {channel}; the server accepts ({status})",
    "auth.fail": "the client tries to authenticate with {method}{as_user} — {channel}; "
                 "the server refuses: {reply}",
    "auth.continue": "the client authenticates with {method}{as_user} — {channel}; the server asks for the next "
                     "part ({status}); the outcome is not in the capture",
    "auth.as": " as {user}",
    "auth.list": "the client asks which login mechanisms the server offers (AUTH)",
    "auth.list.ok": "the client asks which login mechanisms the server offers (AUTH); the server lists them",
    "channel.cleartext": "in cleartext",
    "channel.tls": "inside TLS",
    "channel.challenge": "by challenge-response (the password itself is not sent)",
    # ------------------------------------------------------------------ SMTP
    "smtp.ehlo": "the client identifies itself ({verb})",
    "smtp.ehlo.ok": "the client identifies itself ({verb}); the server lists its extensions",
    "smtp.ehlo.tls.ok": "inside TLS the client identifies itself again ({verb}); "
                        "the server lists its extensions",
    "smtp.helo.ok": "the client identifies itself ({verb}); the server greets it",
    "smtp.mail.ok": "sender transferred and accepted",
    "smtp.mail.fail": "sender rejected: {reply}",
    "smtp.mail.noreply": "sender transferred; no reply in the capture",
    "smtp.rcpt.ok": "recipient transferred and accepted",
    "smtp.rcpt.fail": "recipient rejected: {reply}",
    "smtp.rcpt.noreply": "recipient transferred; no reply in the capture",
    "smtp.data.ok": "start of the message transfer (DATA / {status})",
    "smtp.data.fail": "the server refuses the message transfer: {reply}",
    "smtp.data": "start of the message transfer (DATA)",
    "smtp.bdat": "message chunk of {size} bytes transferred (BDAT)",
    "smtp.bdat.ok": "message chunk of {size} bytes transferred and accepted (BDAT / {status})",
    "smtp.bdat.last.ok": "last message chunk of {size} bytes transferred (BDAT LAST); "
                         "message accepted for delivery ({status})",
    "smtp.bdat.fail": "message chunk rejected: {reply}",
    "smtp.body": "message transferred",
    "smtp.body.incomplete": "message transfer broken off: the end of the message is missing",
    "smtp.body.gap": ("message transferred; {n} byte of the message lost in the capture",
                      "message transferred; {n} bytes of the message lost in the capture"),
    "smtp.dot.ok": "message accepted for delivery ({status})",
    "smtp.dot.fail": "message rejected: {reply}",
    "smtp.dot.noreply": "end of the message; no reply in the capture",
    "smtp.rset": "the client resets the transaction (RSET)",
    "smtp.noop": "the client checks that the server is still there (NOOP)",
    "smtp.vrfy": "the client asks whether {address} exists (VRFY)",
    "smtp.vrfy.ok": "the client asks whether {address} exists (VRFY); the server confirms ({status})",
    "smtp.vrfy.252": "the client asks whether {address} exists (VRFY); "
                     "the server neither confirms nor denies (252)",
    "smtp.expn": "the client asks for the members of the list {address} (EXPN)",
    "smtp.expn.ok": "the client asks for the members of the list {address} (EXPN); the server lists them",
    "smtp.help": "the client asks for help (HELP)",
    "smtp.quit": "the client ends the session (QUIT)",
    "smtp.quit.ok": "positive end of the session (QUIT / {status})",
    "smtp.etrn": "the client asks the server to send queued mail (ETRN)",
    "smtp.auth.continue": "the client answers the server's challenge",
    # ------------------------------------------------------------------ POP3
    "pop3.capa": "the client asks for the server's capabilities (CAPA)",
    "pop3.capa.ok": "the client asks for the server's capabilities (CAPA); the server lists them",
    "pop3.user": "identification: the client names the user {user} (USER)",
    "pop3.user.fail": "identification: the server refuses the user {user}: {reply}",
    "pop3.pass": "authentication: the client sends the password (PASS) — {channel}",
    "pop3.pass.ok": "authentication: the client sends the password (PASS) — {channel}; the server accepts",
    "pop3.apop": "the client authenticates with APOP as {user} — it sends an MD5 digest of the greeting's "
                 "timestamp and the shared secret, never the secret itself",
    "pop3.apop.ok": "the client authenticates with APOP as {user} — it sends an MD5 digest of the greeting's "
                    "timestamp and the shared secret, never the secret itself; the server accepts",
    "pop3.enter": "→ {state} state",
    "pop3.stat": "status: the client asks how many messages there are (STAT)",
    "pop3.stat.ok": ("status: {count} message, {octets} bytes in the mailbox (STAT)",
                     "status: {count} messages, {octets} bytes in the mailbox (STAT)"),
    "pop3.list": "the client lists the messages with their sizes (LIST)",
    "pop3.list.ok": ("the client lists the messages with their sizes (LIST): {n} message",
                     "the client lists the messages with their sizes (LIST): {n} messages"),
    "pop3.list.one": "the client asks for the size of message {msg} (LIST)",
    "pop3.uidl": "the client asks for the messages' unique IDs (UIDL)",
    "pop3.uidl.one": "the client asks for the unique ID of message {msg} (UIDL)",
    "pop3.retr": "download of message {msg} (RETR)",
    "pop3.retr.ok": "download of message {msg} (RETR, {size} bytes)",
    "pop3.retr.incomplete": "incomplete download of message {msg} (RETR): only {size} bytes of it are in the "
                            "capture",
    "pop3.top": "the client reads the header and {lines} body lines of message {msg} (TOP)",
    "pop3.dele": "deletion mark for message {msg} (DELE)",
    "pop3.rset": "the deletion marks are removed (RSET)",
    "pop3.rset.ok": ("the deletion mark of message {msgs} is removed (RSET)",
                     "the deletion marks of messages {msgs} are removed (RSET)"),
    "pop3.rset.none": "the client resets the session (RSET); no message was marked for deletion",
    "pop3.noop": "the client checks that the server is still there (NOOP)",
    "pop3.quit": "the client ends the session (QUIT)",
    "pop3.quit.ok": "positive end of the session (QUIT / {status})",
    "pop3.quit.authorization": "the client ends the session in the AUTHORIZATION state (QUIT): "
                               "no UPDATE, nothing is deleted",
    "pop3.quit.authorization.ok": "positive end of the session (QUIT / {status}) in the AUTHORIZATION state: "
                                  "no UPDATE, nothing is deleted",
    "pop3.quit.update": "the client ends the session (QUIT) → UPDATE state",
    "pop3.quit.update.ok": ("positive end of the session (QUIT / {status}) → UPDATE state: "
                            "message {msgs}, marked with DELE, is deleted",
                            "positive end of the session (QUIT / {status}) → UPDATE state: "
                            "the {n} messages marked with DELE ({msgs}) are deleted"),
    "pop3.quit.update.none": "positive end of the session (QUIT / {status}) → UPDATE state: "
                             "no message was marked for deletion, nothing is deleted",
    "pop3.quit.update.fail": "the client ends the session (QUIT) → UPDATE state; the server could not "
                             "delete every marked message: {reply}",
    # ------------------------------------------------------------------ IMAP
    "imap.capability": "the client asks for the server's capabilities (CAPABILITY)",
    "imap.id": "client and server tell each other their software (ID)",
    "imap.enable": "the client switches on extensions (ENABLE {argument})",
    "imap.namespace": "the client asks for the mailbox namespaces (NAMESPACE)",
    "imap.select": "the client opens the mailbox {mailbox} (SELECT)",
    "imap.select.ok": ("the client opens the mailbox {mailbox} (SELECT): {n} message",
                       "the client opens the mailbox {mailbox} (SELECT): {n} messages"),
    "imap.examine": "the client opens the mailbox {mailbox} read-only (EXAMINE)",
    "imap.examine.ok": ("the client opens the mailbox {mailbox} read-only (EXAMINE): {n} message",
                        "the client opens the mailbox {mailbox} read-only (EXAMINE): {n} messages"),
    "imap.list": "the client lists the mailboxes ({verb})",
    "imap.list.ok": ("the client lists the mailboxes ({verb}): {n} found",
                     "the client lists the mailboxes ({verb}): {n} found"),
    "imap.status": "the client asks for the status of {mailbox} (STATUS)",
    "imap.status.ok": "the client asks for the status of {mailbox} (STATUS): {items}",
    "imap.search": "the client searches the mailbox ({verb} {criteria})",
    "imap.search.ok": ("the client searches the mailbox ({verb} {criteria}): {n} message found",
                       "the client searches the mailbox ({verb} {criteria}): {n} messages found"),
    "imap.set": ("message {set}", "messages {set}"),
    "imap.uidset": ("the message with UID {set}", "the messages with UIDs {set}"),
    "imap.fetch": "the client fetches {items} of {messages} ({verb})",
    "imap.fetch.message": "download of {messages} ({verb} {items}, {size} bytes)",
    "imap.fetch.header": "the client reads header fields of {messages} ({verb})",
    "imap.fetch.header.whole": "the client reads the header of {messages} ({verb} {items})",
    "imap.fetch.partial": "the client fetches part of {messages} ({verb} {items}, {size} bytes)",
    "imap.fetch.incomplete": "incomplete download of {messages} ({verb} {items}): only {size} bytes of the "
                             "message are in the capture",
    "imap.store": "the client changes the flags of {messages} ({verb} {flags})",
    "imap.store.deleted": "deletion mark for {messages} ({verb} {flags})",
    "imap.store.undeleted": "the deletion mark of {messages} is removed ({verb} {flags})",
    "imap.expunge": "the messages marked for deletion are removed (EXPUNGE)",
    "imap.expunge.ok": ("the messages marked for deletion are removed (EXPUNGE): {n} message deleted",
                        "the messages marked for deletion are removed (EXPUNGE): {n} messages deleted"),
    "imap.close": "the client closes the mailbox; messages marked for deletion are removed (CLOSE)",
    "imap.unselect": "the client closes the mailbox without deleting anything (UNSELECT)",
    "imap.append": "the client uploads a message into {mailbox} (APPEND)",
    "imap.append.ok": "the client uploads a message into {mailbox} (APPEND, {size} bytes); "
                      "the server stores it",
    "imap.copy": "the client copies {messages} to {mailbox} ({verb})",
    "imap.move": "the client moves {messages} to {mailbox} ({verb})",
    "imap.create": "the client creates the mailbox {mailbox} (CREATE)",
    "imap.delete": "the client deletes the mailbox {mailbox} (DELETE)",
    "imap.rename": "the client renames a mailbox (RENAME {argument})",
    "imap.subscribe": "the client subscribes to {mailbox} (SUBSCRIBE)",
    "imap.unsubscribe": "the client unsubscribes from {mailbox} (UNSUBSCRIBE)",
    "imap.idle": "the client waits for news from the server (IDLE)",
    "imap.idle.news": "while the client idles, the server reports news: {updates}",
    "imap.done": "the client stops waiting (DONE)",
    "imap.done.ok": "the client stops waiting (DONE); the server ends the IDLE ({status})",
    "imap.noop": "the client polls for news ({verb})",
    "imap.check": "the client asks for a checkpoint of the selected mailbox: housekeeping the server does "
                  "not do after every command, such as writing the mailbox's state to disk (CHECK)",
    "imap.enter": "→ {state} state",
    "imap.logout": "the client ends the session (LOGOUT)",
    "imap.logout.ok": "positive end of the session (LOGOUT / BYE, {status})",
    "imap.compress": "the client switches on compression (COMPRESS {argument})",
    # ------------------------------------------------------------------ the views
    "ui.session": "Session {id}",
    "ui.no_login": "no login",
    "ui.user": "user {user}",
    "ui.user_failed": "user {user} (login failed)",
    "ui.no_tls": "no TLS",
    "ui.tls": "TLS",
    "ui.decrypted": "decrypted",
    "ui.not_decrypted": "not decrypted",
    "ui.messages": ("{n} message", "{n} messages"),
    "ui.anomalies": ("{n} anomaly", "{n} anomalies"),
    "ui.gaps": ("{n} gap", "{n} gaps"),
    "ui.close.fin": "ended with FIN",
    "ui.close.rst": "ended with RST",
    "ui.close.open": "still open at the end of the capture",
    "ui.close.timeout": "idle past the timeout",
    "ui.midstream": "capture starts mid-session",
    "ui.rows_elided": ("{n} more packet of this session is not listed (row limit)",
                       "{n} more packets of this session are not listed (row limit)"),
    "ui.anomaly": "anomaly",
    "ui.summary": "Summary",
    "ui.files": "files",
    "ui.packets": "packets read",
    "ui.packets.value": "{packets} ({tcp} TCP, {mail} in mail sessions)",
    "ui.sessions": "sessions",
    "ui.shown": "{shown} shown{per}, {hidden} hidden by the filter",
    "ui.messages.label": "messages",
    "ui.gaps.label": "gaps",
    "ui.anomalies.label": "anomalies",
    "ui.elapsed": "elapsed",
    "ui.elapsed.value": "{seconds} s ({rate} packets/s)",
    "ui.none": "none",
    "ui.no_sessions": "no mail sessions in the capture",
    "ui.no_match": "no session matches the filter",
    "ui.damaged": "damaged: {problem}",
    "ui.login.ok": "login {user}: accepted",
    "ui.login.fail": "login {user}: refused",
    "ui.login.unknown": "login {user}: outcome not in the capture",
    "ui.password": "password {secret}",
    "ui.digest": "digest {secret}",
    "ui.opaque": "TLS application data, {n} bytes",
    "ui.body": "{what}, {n} bytes",
    "ui.what.message": "message",
    "ui.what.literal": "literal",
    "ui.message": "message",
    "ui.quoted": "“{text}”",
    "ui.no_subject": "without subject",
    "ui.from": "from {sender}",
    "ui.size": ("{n} byte", "{n} bytes"),
    "ui.attachments": ("{n} attachment", "{n} attachments"),
    "ui.incomplete": "incomplete",
    "ui.missing": ("{n} byte missing", "{n} bytes missing"),
    "ui.segments": "in {n} segments (frames {first}–{last})",
    "ui.acks_folded": ("{n} ACK folded in", "{n} ACKs folded in"),
    "ui.gap": ("[gap: {n} byte from the {side} missing]", "[gap: {n} bytes from the {side} missing]"),
    "ui.anomaly.item": "[anomaly {kind}: {detail}]",
    "ui.latency": "after {seconds} s",
    "explain.reply": "↳ {code}: {outcome} · {category}{meaning}",
    "explain.enhanced": "↳ {code}: {meaning}",
    "explain.extension": "↳ {keyword}: {meaning}",
    "ui.answers": "to {verb}",
    "ui.continued": ("{n} byte, continued in frame {frame}", "{n} bytes, continued in frame {frame}"),
    "ui.data": ("{n} byte", "{n} bytes"),
    "ui.literal_end": ("end of the {verb} command after its literal ({n} byte)",
                       "end of the {verb} command after its literal ({n} bytes)"),
    "ui.decrypted.mark": "[decrypted]",
    "ui.status.completed": "completed",
    "ui.status.failed": "failed",
    "ui.status.reset": "reset",
    "ui.status.partial": "partial",
    "ui.duration": "{seconds} s",
    "ui.packets.count": ("{n} packet", "{n} packets"),
    "ui.via": "via {tunnel}",
    "ui.file": "file {name}",
    "ui.tls.mode.starttls": "STARTTLS",
    "ui.tls.mode.implicit": "implicit TLS",
    "col.no": "No.",
    "col.time": "Time",
    "col.source": "Source",
    "col.destination": "Destination",
    "col.proto": "Proto",
    "col.info": "Info",
    "list.id": "ID",
    "list.proto": "Proto",
    "list.client": "Client",
    "list.server": "Server",
    "list.start": "Start (UTC)",
    "list.duration": "Duration",
    "list.user": "User",
    "list.status": "Status",
    "list.messages": "Msgs",
    "list.anomalies": "Anomalies",
    "ui.follow.gap": ("[{n} byte missing from the capture]", "[{n} bytes missing from the capture]"),
    "ui.follow.tls": "[TLS, {n} bytes]",
    "ui.follow.empty": "no stream bytes kept for this session",
    "ui.follow.truncated": ("[{n} more byte not kept (transcript limit)]",
                            "[{n} more bytes not kept (transcript limit)]"),
    "ui.note": "note: {text}",
    "ui.check": "check: {text}",
    "ui.bytes": ("{n:,} byte", "{n:,} bytes"),
    "ui.seconds": "{seconds} s",
    "ui.context_dropped": ("{n} more DNS or ident observation of this session is not listed (limit)",
                           "{n} more DNS or ident observations of this session are not listed (limit)"),
    # ------------------------------------------------------------------ the findings block after the sessions
    "findings.headline": "Findings: ",
    "findings.none": "none",
    "findings.dropped": ("({n} not listed: over the limit)", "({n} not listed: over the limit)"),
    "findings.session": "session {id}",
    "findings.frames": ("frame {frames}", "frames {frames}"),
    "findings.more": ("… {n} more {id} finding (all are in --format json)",
                      "… {n} more {id} findings (all are in --format json)"),
    "severity.high": "high",
    "severity.medium": "medium",
    "severity.low": "low",
    "severity.info": "info",
    # ------------------------------------------------------------------ phases (the caption rows' first word)
    "phase.setup": "setup",
    "phase.greeting": "greeting",
    "phase.negotiation": "negotiation",
    "phase.tls": "tls",
    "phase.auth": "auth",
    "phase.transfer": "transfer",
    "phase.teardown": "teardown",
    "phase.dns": "dns",
    "phase.ident": "ident",
    # ------------------------------------------------------------------ context: DNS and ident beside a session
    "context.who.mta": "the MTA",
    "context.who.sending_mta": "the sending MTA",
    "context.who.receiving_mta": "the receiving MTA",
    "context.who.server": "the server",
    "context.who.client": "the client",
    "context.who.user_agent": "the user agent",
    "context.server-address": "{who} looks up the address of {name}: {results}",
    "context.client-ptr": "{who} looks up the client's name (PTR) → {result}",
    "context.confirms": " and confirms it ({results})",
    "context.contradicts": ", but {results} does not lead back to {client}",
    "context.client-name": "{who} looks up the address of the client's name {name}: {results}",
    "context.helo-name": "{who} looks up the client's HELO name {name}: {results}",
    "context.sender-domain": "{who} checks the sender's domain {name}: {results}",
    "context.recipient-domain": "{who} checks the recipient's domain {name}: {results}",
    "context.command": "while it answers the command, {who} looks up {name}: {results}",
    "context.connect": "before its greeting {who} looks up {name}: {results}",
    "context.other": "{who} looks up {name}: {results}",
    "context.mx": "{who} looks up the MX of {name} → {results}",
    "context.mx-host": "{who} looks up the address of the MX host {name}: {results}",
    "context.dnsbl": "{who} asks the blocklist {zone} about the client {client}: {results}",
    "context.dnsbl.listed": "listed ({codes})",
    "context.dnsbl.clean": "not listed (NXDOMAIN)",
    "context.result": "{qtype} → {answer}",
    "context.mx.record": "{host} (preference {preference})",
    "context.cname": "alias of {name}",
    "context.nodata": "no record",
    "context.nodata.address": "no address",
    "context.nxdomain": "no such name (NXDOMAIN)",
    "context.rcode": "error {rcode}",
    "context.noreply": "no answer in the capture",
    "context.ident.rst": "{who} tries an ident probe (port {port}) — refused with RST",
    "context.ident.answered": "{who} tries an ident probe (port {port}) — the client's identd answers: {reply}",
    "context.ident.error": "{who} tries an ident probe (port {port}) — the client's identd answers with an "
                           "error: {reply}",
    "context.ident.no-response": "{who} tries an ident probe (port {port}) — no answer in the capture",
    "context.ident.closed": "{who} tries an ident probe (port {port}) — the connection closes without an "
                            "answer",
    "context.resume": "{caption} (continued)",
    "ui.dns.query": "Standard query {id} {question}",
    "ui.dns.response": "Standard query response {id} {body}",
    "ui.ident.request": "C: {text}",
    "ui.ident.reply": "S: {text}",
    # ------------------------------------------------------------------ flows: one message across hops
    "flows.flow": "Flow {n}",
    "flows.no_message_id": "no Message-ID",
    "flows.hops": ("{n} hop", "{n} hops in {seconds} s"),
    "flows.chain.ok": "the Received chain matches the hops in the capture",
    "flows.chain.mismatch": "the Received chain does not match the hops in the capture",
    "flows.before": ("{n} Received line from before the capture", "{n} Received lines from before the capture"),
    "flows.col.hop": "Hop",
    "flows.col.session": "Session",
    "flows.col.time": "Time (UTC)",
    "flows.col.path": "Path",
    "flows.col.carrier": "Carrier",
    "flows.col.delay": "Delay",
    "flows.origin.smtp-data": "SMTP DATA",
    "flows.origin.smtp-bdat": "SMTP BDAT",
    "flows.origin.pop3-retr": "POP3 RETR",
    "flows.origin.pop3-top": "POP3 TOP",
    "flows.origin.imap-fetch": "IMAP FETCH",
    "flows.origin.imap-append": "IMAP APPEND",
    "flows.origin.unknown": "?",
    "flows.added.none": "no Received line",
    "flows.added.received": "Received: from {sender} by {by}",
    "flows.gap": "does not start where the previous hop ended",
    "flows.summary": ("{n} message followed, {multi} of them over several hops",
                      "{n} messages followed, {multi} of them over several hops"),
    "flows.skipped": ("{n} partial message without a Message-ID was not followed",
                      "{n} partial messages without a Message-ID were not followed"),
    "flows.dropped": ("{n} message over the limit was not followed", "{n} messages over the limit were not followed"),
    # ------------------------------------------------------------------ what the context shows
    "check.fcrdns.ok": "the client's address {client} has the name {name}, and that name leads back to it "
                       "(forward-confirmed reverse DNS)",
    "check.fcrdns.unconfirmed": "the client's address {client} has the name {name}, but that name resolves to "
                                "{addresses}, not back to it (reverse DNS not forward-confirmed)",
    "check.fcrdns.no-ptr": "the client's address {client} has no name in the reverse DNS ({rcode})",
    "check.helo.ok": "the name the client gives in HELO/EHLO, {helo}, is its name in DNS",
    "check.helo.differs": "the client calls itself {helo} in HELO/EHLO, but its address {client} has the name "
                          "{name}",
    "check.mx-route.ok": "the relay went to {host} ({address}), the MX host of {domain} with the best "
                         "preference ({preference})",
    "check.mx-route.backup-mx": "the relay went to {host} ({address}), a backup MX host of {domain} "
                                "(preference {preference}; the best is {best})",
    "check.mx-route.not-mx": "the relay went to {address}, which is none of the MX hosts DNS returned for "
                             "{domain} ({hosts})",
    "check.nxdomain.refused": "the server refused {verb} with {status} right after DNS said that {domain} does "
                              "not exist (NXDOMAIN)",
    # the terminal view: login outcome, message problems, secrets, TLS details
    "ui.user_unknown": "user {user} (login outcome unknown)",
    "ui.missing_unknown": "bytes missing, amount unknown",
    "ui.header_only": "header only",
    "ui.defects": ("{n} MIME defect", "{n} MIME defects"),
    "ui.nt_response": "NT response {secret}",
    "ui.token": "token {secret}",
    "ui.hashcat": "hashcat {line}",
    "ui.tls.details": "TLS",
    "ui.tls.handshake": "handshake {duration}",
    "ui.tls.bytes": "{client} bytes from the client, {server} from the server",
    "ui.tls.resumed": "resumed session",
    "ui.tls.alpn": "ALPN {alpn}",
    "ui.tls.alpn_offered": "ALPN offered: {alpn}",
    "ui.tls.offered": ("client offers {versions} and {n} cipher suite",
                       "client offers {versions} and {n} cipher suites"),
    "ui.tls.cert": "certificate {subject}",
    "ui.tls.self_signed": "self-signed",
    "ui.tls.issuer": "issued by {issuer}",
    "ui.tls.valid": "valid {start} to {end}",
    "ui.tls.expired": "expired",
    "ui.tls.not_yet": "not yet valid",
    "ui.tls.san": "SAN {names}",
    "ui.tls.more": "+{n} more",
    "ui.tls.chain": ("chain of {n} certificate", "chain of {n} certificates"),
    "ui.tls.client_cert": "client certificate {subject}",
    "ui.tls.no_cert": "certificate encrypted (no keys)",
    "ui.tls.alert": "alert {level} {description} from the {side}",
}

CATALOGS: dict[str, dict[str, Message]] = {"en": EN, "de": DE}
"""Language code → catalogue; ``--lang`` and ``MAILTRACE_LANG`` choose one (English is the default)."""


class _Lenient(dict[str, Any]):
    """Format parameters that show a missing placeholder as ``?``."""

    def __missing__(self, key: str) -> str:
        return "?"


def has(key: str, lang: str = "en") -> bool:
    return key in CATALOGS.get(lang, EN) or key in EN


def translated(key: str, lang: str = "en") -> bool:
    """The language's own catalogue has the message (no English fallback): for optional refinements."""
    return key in CATALOGS.get(lang, EN)


def fields(key: str, lang: str = "en") -> set[str]:
    """The placeholders a message uses (both plural forms)."""
    message = CATALOGS.get(lang, EN).get(key) or EN.get(key, "")
    forms = message if isinstance(message, tuple) else (message,)
    return {name for form in forms for _, name, _, _ in Formatter().parse(form) if name}


def text(key: str, lang: str = "en", /, **params: Any) -> str:
    """The sentence ``key`` in ``lang`` (falling back to English), with ``params`` filled in."""
    message = CATALOGS.get(lang, EN).get(key)
    if message is None:
        message = EN.get(key, key)
    if isinstance(message, tuple):
        n = params.get("n", 1)
        message = message[0] if n == 1 else message[1]
    return message.format_map(_Lenient(params))
