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

from collections.abc import Callable
from string import Formatter
from typing import Any

from mailtrace.render.catalog_de import DE

Message = str | tuple[str, str]

EN: dict[str, Message] = {
    # ------------------------------------------------------------------ TCP
    "setup": "TCP connection set up from the {role} {client} to the mail server ({flags})",
    "setup.unanswered": "the {role} {client} tries to connect to the mail server ({flags}); "
                        "no answer in the capture",
    "setup.refused": "the {role} {client} tries to connect to the mail server ({flags}); the server refuses "
                     "with RST: nothing accepts connections on port {port} (or a firewall rejects them)",
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
    "tcp.data": ("data the mail protocol does not explain ({bytes:,} byte)",
                 "data the mail protocol does not explain ({bytes:,} bytes)"),
    "gap.many": "{n} gaps: {nbytes:,} bytes are missing from the capture ({server:,} from the server, {client:,} "
                "from the client)",
    "gap.many.one_side": "{n} gaps: {nbytes:,} bytes from the {side} are missing from the capture",
    "gap": ("{nbytes:,} byte from the {side} is missing from the capture",
            "{nbytes:,} bytes from the {side} are missing from the capture"),
    "pipelined": "{n} commands in one segment, sent without waiting for each reply (pipelining, {rfc})",
    "pipelined.unoffered": ("{n} commands in one segment, sent without waiting for each reply although the server "
                            "did not offer PIPELINING"),
    "repeat": "{caption} (×{n})",
    "more.like": ("… and {n:,} more like it", "… and {n:,} more like it"),
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
    "answers_lost": "the server answers a command the capture lost: {reply}",
    "server.closes": "the server ends the session: {reply}",
    "generic": "the client sends {verb}",
    "generic.ok": "the client sends {verb}; the server accepts ({status})",
    "unknown": "unknown command {verb}",
    "smtp.junk": "the client sends a line that is no command",
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
    "tls.opaque": ("encrypted application data ({n:,} packet, {bytes:,} bytes): without the keys the mail "
                   "protocol cannot be read",
                   "encrypted application data ({n:,} packets, {bytes:,} bytes): without the keys the mail "
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
    "auth.cancel": "the client cancels the authentication with {method} (*)",
    "auth.cancel.sent": "the client cancels the authentication with {method}{as_user} (*) after sending part of "
                        "it — {channel}",
    "auth.cancel.confirmed": "{action}; the server confirms the cancellation ({status})",
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
    "pop3.stat.ok": ("status: {count:,} message, {octets:,} bytes in the mailbox (STAT)",
                     "status: {count:,} messages, {octets:,} bytes in the mailbox (STAT)"),
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
    "imap.close.readonly": "the client closes the mailbox, opened read-only: nothing is deleted (CLOSE)",
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
    "imap.bye": "the server closes the session",
    "imap.bye.reason": "the server closes the session: {reason}",
    "imap.compress": "the client switches on compression (COMPRESS {argument})",
    # ------------------------------------------------------------------ the views
    "ui.session": "Session {id}",
    "ui.no_login": "no login",
    "ui.login_sealed": "login not visible (encrypted)",
    "ui.messages_sealed": "messages not visible (encrypted)",
    "ui.sealed.label": "encrypted",
    "ui.sealed": ("{n} session not decrypted: logins and messages inside TLS are not visible without its "
                  "keys (--tls-keylog FILE: the key log a client or server wrote with SSLKEYLOGFILE)",
                  "{n} sessions not decrypted: logins and messages inside TLS are not visible without their "
                  "keys (--tls-keylog FILE: the key log a client or server wrote with SSLKEYLOGFILE)"),
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
    "ui.rows_elided": ("{n:,} more packet of this session is not listed (row limit: {limit:,} per session, {all:,} "
                       "for all sessions at once)",
                       "{n:,} more packets of this session are not listed (row limit: {limit:,} per session, {all:,} "
                       "for all sessions at once)"),
    "ui.events_dropped": ("{n:,} more command or reply of this session is not listed (limit: {limit:,} of each per "
                          "session, {all:,} for all sessions at once)",
                          "{n:,} more commands and replies of this session are not listed (limit: {limit:,} of each "
                          "per session, {all:,} for all sessions at once)"),
    "ui.anomalies_dropped": ("{n:,} more anomaly of this session is not listed (limit {limit:,} per session)",
                             "{n:,} more anomalies of this session are not listed (limit {limit:,} per session)"),
    "ui.notes_dropped": ("{n:,} more note of this session (IDLE news, TLS messages and alerts) is not listed "
                         "(limit {limit:,} per session)",
                         "{n:,} more notes of this session (IDLE news, TLS messages and alerts) are not listed "
                         "(limit {limit:,} per session)"),
    "ui.logins_dropped": ("{n:,} more login attempt of this session is not listed (limit {limit:,} per session; "
                          "the statistics and findings count it): {outcomes}",
                          "{n:,} more login attempts of this session are not listed (limit {limit:,} per session; "
                          "the statistics and findings count them): {outcomes}"),
    "ui.listed_dropped": ("{n:,} more entry of this session's protocol record (a recipient, a LIST line, an IMAP "
                          "step…) is counted but not listed (all sessions at once list at most {all:,} bytes of them)",
                          "{n:,} more entries of this session's protocol record (recipients, LIST lines, IMAP "
                          "steps…) are counted but not listed (all sessions at once list at most {all:,} bytes of "
                          "them)"),
    "ui.messages_dropped": ("{n:,} more message of this session is not listed (limit {limit:,} per session; "
                            "mailtrace extract writes it)",
                            "{n:,} more messages of this session are not listed (limit {limit:,} per session; "
                            "mailtrace extract writes them)"),
    "ui.anomaly": "anomaly",
    "ui.summary": "Summary",
    "ui.snapped": ("{n:,} frame cut by the snap length",
        "{n:,} frames cut by the snap length"),
    "ui.skipped.label": "skipped",
    "ui.skipped.linktype": ("{n:,} frame of link type {types}, which mailtrace cannot decode",
        "{n:,} frames of link type {types}, which mailtrace cannot decode"),
    "ui.skipped.headers": ("{n:,} frame with headers cut short",
        "{n:,} frames with headers cut short"),
    "context.cut": "the answer is cut off in the capture (snap length)",
    "ui.retransmission": "[retransmission of frame {frame}]",
    "ui.retransmission.unknown": "[retransmission]",
    "ui.files": "files",
    "ui.packets": "packets read",
    "ui.packets.value": "{packets} ({tcp} TCP, {mail} in mail sessions)",
    "ui.sessions": "sessions",
    "ui.shown": "{shown:,} shown{per}, {hidden:,} hidden by the filter",
    "ui.messages.label": "messages",
    "ui.gaps.label": "gaps",
    "ui.anomalies.label": "anomalies",
    "ui.elapsed": "elapsed",
    "ui.elapsed.value": "{seconds} s ({rate} packets/s)",
    "ui.none": "none",
    "ui.no_sessions": "no mail sessions in the capture",
    "ui.no_match": "no session matches the filter",
    "ui.damaged": "damaged: {problem}",
    "ui.unreadable": "{name}: not read: {error}",
    "html.pill.unread": "not read",
    "ui.login.ok": "login {user}: accepted",
    "ui.login.fail": "login {user}: refused",
    "ui.login.unknown": "login {user}: outcome not in the capture",
    "ui.password": "password {secret}",
    "ui.digest": "digest {secret}",
    "ui.opaque": "TLS application data, {n:,} bytes",
    "ui.body": "{what}, {n:,} bytes",
    "ui.what.message": "message",
    "ui.what.literal": "literal",
    "ui.message": "message",
    "ui.quoted": "“{text}”",
    "ui.no_subject": "without subject",
    "ui.from": "from {sender}",
    "ui.size": ("{n:,} byte", "{n:,} bytes"),
    "ui.attachments": ("{n} attachment", "{n} attachments"),
    "ui.incomplete": "incomplete",
    "ui.missing": ("{n:,} byte missing", "{n:,} bytes missing"),
    "ui.segments": "in {n} segments (frames {first}–{last})",
    "ui.acks_folded": ("{n} ACK folded in", "{n} ACKs folded in"),
    "ui.gap": ("[gap: {n:,} byte from the {side} missing]", "[gap: {n:,} bytes from the {side} missing]"),
    "ui.anomaly.item": "[anomaly {kind}: {detail}]",
    "ui.latency": "after {seconds} s",
    "explain.reply": "↳ {code}: {outcome} · {category}{meaning}",
    "explain.challenge": "↳ the challenge is base64 for “{text}”",
    "explain.enhanced": "↳ {code}: {meaning}",
    "explain.extension": "↳ {keyword}: {meaning}",
    "ui.answers": "to {verb}",
    "ui.answers_lost": "to a command the capture lost",
    "ui.continued": ("{n:,} byte, continued in frame {frame}", "{n:,} bytes, continued in frame {frame}"),
    "ui.data": ("{n:,} byte", "{n:,} bytes"),
    "ui.more_lines": ("… (+{n:,} more line)", "… (+{n:,} more lines)"),
    "ui.more_pieces": ("… (+{n:,} more in this packet)", "… (+{n:,} more in this packet)"),
    "ui.literal_end": ("end of the {verb} command after its literal ({n:,} byte)",
                       "end of the {verb} command after its literal ({n:,} bytes)"),
    "ui.decrypted.mark": "[decrypted]",
    "ui.status.completed": "completed",
    "ui.status.failed": "failed",
    "ui.status.reset": "reset",
    "ui.status.partial": "partial",
    "ui.packets.count": ("{n:,} packet", "{n:,} packets"),
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
    "ui.follow.decrypted": "[TLS from here on, decrypted with the key log: the plaintext inside the records]",
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
    "flows.hops.one_session": ("{n} sighting in one session",
        "{n} sightings in one session, {seconds} s apart"),
    "flows.fetched_again": ("{n} download", "downloaded {n} times from the mailbox, {seconds} s apart"),
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
    # ------------------------------------------------------------------ review 3: rows, placeholders, notes
    "ui.partial": "partial by request",
    "ui.partial.top": ("partial by request (TOP: the header and {n} body line)",
                       "partial by request (TOP: the header and {n} body lines)"),
    "ui.partial.header": "partial by request (header only)",
    "ui.partial.range": "partial by request (a byte range)",
    "ui.login.cancelled": "the client cancelled the authentication (*)",
    "ui.placeholder.password": "[password]",
    "ui.placeholder.sasl": "[SASL response]",
    "ui.placeholder.initial": "[initial response]",
    "ui.placeholder.digest": "[digest]",
    "ui.placeholder.credentials": "[credentials]",
    "ui.note.envelope": "message {msg}: {subject} from {sender}",
    "ui.note.structure": "message {msg} structure: {parts}",
    "ui.note.more": "+{n} more",
    "msg.partial": "partial by request: {reason}",
    "msg.part.partial": "not all of it fetched: the client asked for part of the message",
    "html.pill.cancelled": "cancelled by the client",
    "html.outcome.login_cancelled": "login cancelled",
    "html.ev.login": "login {mechanism}{as_user}: {verdict}",
    "html.ev.as_user": " as {user}",
    "html.ev.accepted": "accepted",
    "html.ev.rejected": "rejected",
    "html.ev.unknown": "outcome unknown",
    "html.ev.cancelled": "the client cancelled the authentication (*)",
    "html.ev.end": "end of message ({origin}, {state})",
    "html.ev.complete": "complete",
    "html.ev.incomplete": "incomplete",
    "html.ev.missing": ("incomplete, {n} byte missing", "incomplete, {n} bytes missing"),
    "html.ev.missing_unknown": "incomplete, bytes missing (amount unknown)",
    "html.mime.partial": "not all of it fetched: the client asked for part of the message",
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
    # ------------------------------------------------------------------ the HTML report's own words
    # Values may hold markup of our own (<code>, <span class="mono">); parameters are escaped (html.Translator).
    "html.generated": "Generated by mailtrace {version} from the capture alone: every time, frame number and byte "
                      "below comes from the capture file.",
    "html.filtered": "Only the sessions that match <span class=\"mono\">{filter}</span> (the JSON report's "
                     "“filter”).",
    "html.secrets.shown": "Secrets are shown in this report (--show-secrets): handle it like a password file.",
    "html.secrets.redacted": "Passwords and tokens are redacted.",
    "html.title": "mailtrace report: {names}",
    "html.contents": "Contents",
    "html.h.overview": "Overview",
    "html.h.findings": "Findings",
    "html.h.sessions": "Sessions",
    "html.h.statistics": "Statistics",
    "html.h.flows": "Message flows",
    "html.h.details": "Session details",
    "html.h.about": "About this report",
    "html.h.messages": "Messages",
    "html.h.anomalies": "Anomalies",
    "html.h.files": "Capture files",
    "html.h.credentials": "Credentials seen in cleartext",
    "html.card.span": "Time span",
    "html.card.packets": "{tcp} TCP, {mail} in mail sessions; {bytes}",
    "html.card.messages": ("{bytes}; {n} attachment", "{bytes}; {n} attachments"),
    "html.card.credentials": "Credentials in cleartext",
    "html.card.credentials.detail": "logins readable on the wire (no TLS)",
    "html.none": "none",
    "html.yes": "yes",
    "html.no": "no",
    "html.all": "all",
    "html.chart.timeline": "Sessions started over time (seconds since the first packet of the capture)",
    "html.chart.timeline.dropped": ("The chart shows the first {limit} sessions; {n} later one is counted above "
                                    "but not drawn.",
                                    "The chart shows the first {limit} sessions; {n} later ones are counted above "
                                    "but not drawn."),
    "html.chart.replies": "Replies by class (how the servers answered)",
    "html.chart.replies.title": "Replies by class",
    "html.chart.timeline.title": "Sessions started over time",
    "html.chart.timeline.tip": ("{protocol}: {n} session from +{start}",
                                "{protocol}: {n} sessions from +{start}"),
    "html.chart.secs": "{v}s",
    "html.chart.minutes": "{v}m",
    "html.chart.hours": "{v}h",
    "html.chart.spread.tip": "{label}: {count} × · median {median} · p95 {p95} · max {max}",
    "st.share": "{label}: {value:,}{unit} ({share:.1f} %)",
    "html.no_sessions": "No sessions.",
    "html.no_replies": "No replies.",
    "html.col.file": "File",
    "html.col.format": "Format",
    "html.col.packets": "Packets",
    "html.col.bytes": "Bytes",
    "html.col.first_packet": "First packet",
    "html.col.last_packet": "Last packet",
    "html.col.problems": "Problems",
    "html.col.session": "Session",
    "html.col.protocol": "Protocol",
    "html.col.mechanism": "Mechanism",
    "html.col.user": "User",
    "html.col.outcome": "Outcome",
    "html.col.frames": "Frames",
    "html.col.password": "Password",
    "html.col.severity": "Severity",
    "html.col.number": "#",
    "html.col.client": "Client",
    "html.col.server": "Server",
    "html.col.start": "Start",
    "html.col.duration": "Duration",
    "html.col.tls": "TLS",
    "html.pill.truncated": "truncated",
    "html.pill.accepted": "accepted",
    "html.pill.rejected": "rejected",
    "html.pill.unknown": "unknown",
    "html.pill.exposed": "exposed",
    "html.pill.digest_only": "digest only",
    "html.pill.decrypted": "decrypted",
    "html.pill.via": "via {tunnel}",
    "html.more_not_listed": "{n} more not listed.",
    "html.more_not_shown": "{n} more not shown.",
    "html.credentials.explain": "These logins crossed the network without TLS. With PLAIN, LOGIN or USER/PASS anyone "
                                "on the path reads the password itself (PLAIN and LOGIN only base64-encode it); "
                                "challenge–response mechanisms (CRAM-MD5, APOP) hide it but let an eavesdropper try "
                                "passwords offline.",
    "html.findings.explain": "Security and spam-defence observations over all sessions, most severe first "
                             "(docs/findings.md describes each id). Frames link to the packet rows that show them; "
                             "each session's section repeats its own findings.",
    "html.findings.secrets": "Secrets are included (--show-secrets).",
    "html.findings.no_secrets": "User names are named; passwords are not (--show-secrets includes them).",
    "html.severity.and_higher": "{severity} and higher",
    "html.count.findings": ("{shown} of {n} finding", "{shown} of {n} findings"),
    "html.count.sessions": ("{shown} of {n} session", "{shown} of {n} sessions"),
    "html.findings.hidden": ("{n} more finding is in the JSON report (limit: {limit} rows here).",
                             "{n} more findings are in the JSON report (limit: {limit} rows here)."),
    "html.findings.none": "No findings.",
    "html.findings.dropped": ("{n} further finding was counted but not kept (the findings limit of the analysis); "
                              "the counts above include them.",
                              "{n} further findings were counted but not kept (the findings limit of the "
                              "analysis); the counts above include them."),
    "html.filter": "Filter",
    "html.filter.placeholder": "address, user, subject, smtp, tls:none …",
    "html.button.open_all": "Open all sections",
    "html.button.close_all": "Close all",
    "html.button.download_json": "Download JSON",
    "html.button.download_json.title": "The JSON report (as mailtrace analyze --format json) embedded in this page",
    "html.index.dropped": ("{n} further session is counted in the overview but not listed (limit: {limit} rows). "
                           "Use <code>mailtrace analyze --format json</code> for all of them.",
                           "{n} further sessions are counted in the overview but not listed (limit: {limit} rows). "
                           "Use <code>mailtrace analyze --format json</code> for all of them."),
    "html.index.stubs": ("{n} session has no detail section because the report reached its size limits "
                         "({sections} sections, {bytes}); it is listed above and in the JSON report.",
                         "{n} sessions have no detail section because the report reached its size limits "
                         "({sections} sections, {bytes}); they are listed above and in the JSON report."),
    "html.details.explain": "Each session is one TCP connection (Wireshark: <code>tcp.stream eq N</code>). The "
                            "packet table uses the capture's frame numbers and, like Wireshark's Time column and the "
                            "terminal view, seconds since the first packet of the capture file (hover for the "
                            "absolute time). Rows are grouped into the steps of the protocol, each with a caption, "
                            "and coloured by phase: setup, greeting, negotiation, TLS, authentication, transfer, "
                            "teardown.",
    "html.details.none": "No session sections.",
    "html.about.self_contained": "This page is self-contained: it loads nothing from the network (its "
                                 "Content-Security-Policy forbids it), so it can be mailed or attached to a ticket "
                                 "and opened offline. Everything from the capture is shown as text, never run.",
    "html.about.embedded": "Attachments of up to {each} each ({total} in all) are embedded and saved only when you "
                           "press their button. They are the bytes as captured: treat them as possible malware.",
    "html.about.embedded.n": "Attachments of up to {each} each ({total} in all) are embedded and saved only when you "
                             "press their button ({n} embedded). They are the bytes as captured: treat them as "
                             "possible malware.",
    "html.about.not_embedded": "Attachment contents are not included (only names, types, sizes and hashes); "
                               "<code>--embed-attachments</code> includes small ones.",
    "html.about.limits": "Limits of this report: {rows} packet rows and {arrows} diagram arrows per session, {text} "
                         "characters per text, {sections} session sections and {bytes} of sections, {index} index "
                         "rows. Notes in the page say where something was left out.",
    "html.about.json": "The JSON report (format “{format}”, version {version}) is embedded in this page; “Download "
                       "JSON” saves it.",
    "html.col.finding": "Finding",
    "html.col.seen": "What was seen",
    "html.col.reference": "Reference",
    "html.several": "several",
    "html.findings.session_hidden": ("{n} more finding of this session is in the findings table at the top and in "
                                     "the JSON report.",
                                     "{n} more findings of this session are in the findings table at the top and in "
                                     "the JSON report."),
    "html.flows.explain": "One message followed across the sessions of the capture — submission, relay, retrieval "
                          "(POP3 RETR, IMAP FETCH), APPEND — joined by its Message-ID, or by a hash of its body when "
                          "it has none (the JSON report's “flows”, the same as <code>mailtrace flows</code>). Each "
                          "hop names its session, its path (for a retrieval: from the server to the client), its "
                          "time and the delay since the previous hop; under it, the Received lines the hop added to "
                          "the header and whether they record the previous hop (✓) or not (✗).",
    "html.flows.total": ("{n} message followed, {multi} of them over several hops.",
                         "{n} messages followed, {multi} of them over several hops."),
    "html.flows.single_hidden": ("{n} message seen only once is listed in the JSON report only.",
                                 "{n} messages seen only once are listed in the JSON report only."),
    "html.flows.hidden": ("{n} further flow is in the JSON report (limit: {limit} here).",
                          "{n} further flows are in the JSON report (limit: {limit} here)."),
    "html.flows.from": "from {sender}",
    "html.flows.hops": ("{n} hop", "{n} hops in {duration}"),
    "html.flows.col.added": "Received lines added",
    "html.session": "Session {id}",
    "html.packets": ("{n} packet", "{n} packets"),
    "html.bytes": ("{n} byte", "{n} bytes"),
    "html.parts": ("{n} part", "{n} parts"),
    "html.attachments": ("{n} attachment", "{n} attachments"),
    "html.anomalies": ("{n} anomaly", "{n} anomalies"),
    "html.summary.user": "user {user}",
    "html.col.no": "No.",
    "html.col.time": "Time",
    "html.col.source": "Source",
    "html.col.destination": "Destination",
    "html.col.length": "Payload",
    "html.col.info": "Info",
    "html.rows_hidden": ("{n} more packet row is not shown (limit {limit} per session). <code>mailtrace "
                         "analyze</code> prints them all.",
                         "{n} more packet rows are not shown (limit {limit} per session). <code>mailtrace "
                         "analyze</code> prints them all."),
    "html.listed_dropped": ("{n} entry of this session's protocol record (a recipient, a LIST line, an IMAP step) "
                            "was counted but not kept by the analyzer (all sessions at once keep at most {all} "
                            "bytes of them).",
                            "{n} entries of this session's protocol record (recipients, LIST lines, IMAP steps) "
                            "were counted but not kept by the analyzer (all sessions at once keep at most {all} "
                            "bytes of them)."),
    "html.events_dropped": ("{n} command or reply of this session was counted but not kept by the analyzer (limit: "
                            "{limit} of each per session, {all} for all sessions at once).",
                            "{n} commands and replies of this session were counted but not kept by the analyzer "
                            "(limit: {limit} of each per session, {all} for all sessions at once)."),
    "html.anomalies_dropped": ("{n} anomaly of this session was counted but not kept (limit {limit} per session).",
                               "{n} anomalies of this session were counted but not kept (limit {limit} per "
                               "session)."),
    "html.notes_dropped": ("{n} note of this session (IDLE news, TLS messages and alerts) was counted but not "
                           "kept (limit {limit} per session).",
                           "{n} notes of this session (IDLE news, TLS messages and alerts) were counted but not "
                           "kept (limit {limit} per session)."),
    "html.logins_dropped": ("{n} login attempt of this session was counted but not kept (limit {limit} per "
                            "session): {outcomes}.",
                            "{n} login attempts of this session were counted but not kept (limit {limit} per "
                            "session): {outcomes}."),
    "html.messages_dropped": ("{n} message of this session was counted but not kept (limit {limit} per session; "
                              "<code>mailtrace extract</code> writes it).",
                              "{n} messages of this session were counted but not kept (limit {limit} per session; "
                              "<code>mailtrace extract</code> writes them)."),
    "html.rows_elided": ("{n} packet of this session was counted but not kept by the analyzer (row limit: {limit} "
                         "per session, {all} for all sessions at once).",
                         "{n} packets of this session were counted but not kept by the analyzer (row limit: {limit} "
                         "per session, {all} for all sessions at once)."),
    "html.h.ladder": "Sequence diagram",
    "html.ladder.explain": "Client on the left, server on the right; one arrow per command, reply and TCP control "
                           "packet, bulk data folded into one arrow per run. Bands show the phases; the numbers on "
                           "the right are frame numbers; a green bar marks packets read through TLS with the key log "
                           "(encrypted on the wire). Hover for details.",
    "html.arrows_dropped": ("{n} more arrow is not drawn (limit {limit}).",
                            "{n} more arrows are not drawn (limit {limit})."),
    "html.h.auth": "Authentication",
    "html.col.wire": "On the wire",
    "html.col.secret": "Secret",
    "html.col.details": "Details",
    "html.pill.cleartext": "cleartext",
    "html.pill.inside_tls": "inside TLS",
    "html.auth.readable": "password readable",
    "html.auth.digest": "digest/challenge only",
    "html.auth.decrypted": "(decrypted)",
    "html.auth.hidden": "hidden (--show-secrets shows it)",
    "html.h.transactions": "Transactions",
    "html.message": "Message {n}",
    "html.frames": "frames",
    "html.frame": "frame {frame}",
    "html.pill.partial": "partial by request: {reason}",
    "html.pill.incomplete": "incomplete",
    "html.pill.incomplete.unknown": "incomplete, bytes missing (amount unknown)",
    "html.pill.incomplete.bytes": ("incomplete, {n} byte missing", "incomplete, {n} bytes missing"),
    "html.pill.summarised": "larger than the in-memory limit: summarised from the stream (header fields, MIME tree "
                            "and hashes cover the whole message)",
    "html.headers.summary": "Header fields ({n}, in the order sent) with what each one means",
    "html.headers.summary.of": "Header fields ({shown} of {n}, in the order sent) with what each one means",
    "html.headers.none": "Header fields: none.",
    "html.col.field": "Field",
    "html.col.value": "Value",
    "html.col.field_meaning": "What the field means",
    "html.received.summary": ("Received chain ({n} hop, in path order: hop 1 is nearest the sender)",
                              "Received chain ({n} hops, in path order: hop 1 is nearest the sender)"),
    "html.col.from_by": "From → by",
    "html.col.with_id": "With / id",
    "html.col.for": "For",
    "html.mime.summary": "MIME structure ({parts}, {attachments}) with sizes, encoding overhead and hashes",
    "html.mime.sizes": "{sent} as sent → {decoded} decoded",
    "html.mime.overhead": "(base64 overhead {overhead})",
    "html.mime.incomplete": "incomplete: the message ended before this part did",
    "html.mime.hidden": ("{n} more part not shown.", "{n} more parts not shown."),
    "html.envelope.summary": "Envelope vs header",
    "html.envelope.same": "same address",
    "html.envelope.differ": "differ: the envelope sender is not the author",
    "html.envelope.differ.sender": "differ: the envelope sender is not the author or Sender",
    "html.envelope.bcc": "Bcc (in the envelope, in no To/Cc field):",
    "html.col.recipient": "Recipient",
    "html.col.header": "Header",
    "html.col.meaning": "Meaning",
    "html.col.attachment": "Attachment",
    "html.col.type": "Type",
    "html.col.encoding": "Encoding",
    "html.col.size": "Size",
    "html.col.as_sent": "As sent",
    "html.save": "Save {size}",
    "html.save.title": "Saves the bytes as captured. Attachments from captures may be malware.",
    "html.defects": "Parser defects ({n})",
    "html.messages_hidden": ("{n} more message not shown.", "{n} more messages not shown."),
    "html.col.cert_subject": "Certificate subject",
    "html.col.issuer": "Issuer",
    "html.col.valid_from": "Valid from",
    "html.col.valid_until": "Valid until",
    "html.col.san": "Names (SAN)",
    "html.tls.alerts": "TLS alerts:",
    "html.tls.anomalies": "TLS anomalies:",
    "html.col.frame": "Frame",
    "html.col.from": "From",
    "html.col.kind": "Kind",
    "html.col.detail": "Detail",
    "html.h.gaps": "Gaps",
    "html.gap": ("{n} byte from the {side} missing at frame {link} (never filled in)",
                 "{n} bytes from the {side} missing at frame {link} (never filled in)"),
    "html.h.notes": "Notes",
    "html.h.protocol_details": "Protocol details",
    "html.json_too_big": "This session's JSON ({size}) is larger than the embedding limit ({limit}) and is not "
                         "embedded; <code>mailtrace analyze --format json</code> has it.",
    "html.badge.findings": ("{n} finding ({severity})", "{n} findings ({severity})"),
    "html.outcome.login_ok": "login ok",
    "html.outcome.login_failed": "login failed",
    "html.outcome.login_unknown": "login ?",
    "html.outcome.sealed": "encrypted: not decrypted",
    "html.outcome.messages": ("{n} message", "{n} messages"),
    "html.outcome.errors": ("{n} error reply", "{n} error replies"),
    "html.outcome.reset": "reset",
    "html.tls.none": "none (cleartext)",
    "html.tls.starttls": "STARTTLS",
    "html.tls.implicit": "implicit TLS",
    "html.tls.decrypted": ", decrypted with the key log",
    "html.tls.not_decrypted": ", not decrypted (no keys)",
    "html.head.file": "Capture file",
    "html.head.filter": "Wireshark filter",
    "html.head.frames": "Frames",
    "html.head.frames.value": "{first} – {last} ({packets})",
    "html.head.start.time": " (Time {time})",
    "html.head.bytes": "client → server {client}, server → client {server}",
    "html.head.end": "End",
    "html.close.fin": "closed with FIN",
    "html.close.rst": "reset (RST)",
    "html.head.tunnel": "Tunnel",
    "html.head.helo": "HELO/EHLO name",
    "html.envelope.yes": "yes",
    "html.envelope.yes.reply": "yes, {reply}",
    "html.st.replies": "SMTP replies by class and category",
    "html.st.responses": "POP3 and IMAP responses",
    "html.st.commands": "Commands",
    "html.st.addresses": "Top senders, recipients and domains",
    "html.st.timing": "Reply latency and session durations",
    "html.st.messages": "Messages and attachments",
    "html.st.logins": "Logins",
    "html.st.protocols": "Protocols",
    "html.st.spam": "Spam defences",
    "html.st.findings": "Findings by id",
    "html.st.codes": "Reply codes seen, with their meaning",
    "html.st.numbers": "The numbers",
    "html.st.latency": "Reply latency per command",
    "html.st.durations": "Session durations",
    "html.st.types": "Attachment types",
    "st.replies_by_class": "SMTP replies by class",
    "st.tagged": "(tagged)",
    "st.untagged": "(untagged)",
    "st.responses": "POP3 and IMAP responses",
    "st.commands": "{name} commands",
    "st.senders": "Senders (MAIL FROM)",
    "st.recipients": "Recipients (RCPT TO)",
    "st.sender_domains": "Sender domains",
    "st.recipient_domains": "Recipient domains",
    "st.header_from": "Authors (From header)",
    "st.per_server": "Sessions per server",
    "st.per_client": "Sessions per client",
    "st.end_of_data": "end of data",
    "st.session": "{protocol} session",
    "st.latency": "Reply latency per command (median, p95, max)",
    "st.durations": "Session durations (median, p95, max)",
    "st.decoded": "decoded content",
    "st.overhead": "base64 overhead",
    "st.overhead_title": "Bytes of base64 parts as sent: content and encoding overhead",
    "st.bytes_unit": "bytes",
    "st.attachment_types": "Attachment types",
    "st.others": ("{n} other", "{n} others"),
    "st.spam.verdicts": "messages with verdict headers",
    "st.spam.dkim_signed": "DKIM signed by {domain}",
    "st.spam.flagged": "flagged as spam by a filter",
    "st.spam.refused": "refused: {category}",
    "st.spam.relay": "relaying refused",
    "st.spam.unknown": "RCPT refused as unknown user",
    "st.spam.deferred": "RCPT deferred (450/451, greylisting?)",
    "st.spam.grey_retried": "greylisted, retried later and accepted",
    "st.spam.grey_not": "greylisted, no retry in the capture",
    "st.spam.dnsbl": "DNS blocklist look-ups",
    "st.spam.dnsbl.listed": "DNSBL: listed (127.0.0.x)",
    "st.spam.dnsbl.not_listed": "DNSBL: not listed (NXDOMAIN)",
    "st.spam.dnsbl.unanswered": "DNSBL: no answer seen",
    "st.spam.dnsbl.other": "DNSBL: other answer (error, no 127.0.0.x)",
    "st.spam.zone": "DNSBL look-ups on {zone}",
    "st.spam.zone_value": "{lookups} ({listed} listed)",
    "html.ladder.title": "Sequence diagram: {client} and {server}",
    "html.ladder.tip": "frame {frame}, +{rel} s: {tip}",
    "html.ladder.client": "client",
    "html.ladder.server": "server",
    "html.ladder.decrypted": "decrypted with the TLS key log: encrypted on the wire",
    "html.ladder.data_run": ("message data: {n} segment, {bytes}",
                             "message data: {n} segments, {bytes}"),
    "html.ladder.tls_run": ("TLS records (encrypted): {n} segment, {bytes}",
                            "TLS records (encrypted): {n} segments, {bytes}"),
    "html.ladder.bytes": ("{n} byte",
                          "{n} bytes"),
    "html.ladder.frames": "{label}, frames {first}–{last}",
    "html.ladder.more_lines": ("(+{n} line)",
                               "(+{n} lines)"),
    "msg.frame": "frame {frame}",
    "msg.frames": "frames {first}–{last}",
    "msg.title": "Message {n} of session {session}",
    "msg.sent_by_client": "the client sent it",
    "msg.sent_by_server": "the server sent it",
    "msg.seen": "Seen",
    "msg.seen_value": "{when} UTC (capture time of its first packet)",
    "msg.bytes": ("{n:,} byte",
        "{n:,} bytes"),
    "msg.complete": "complete",
    "msg.incomplete": "INCOMPLETE: {reason}",
    "msg.truncated": "larger than the in-memory limit: summarised from the stream",
    "msg.size": "Size",
    "msg.verdicts": "Verdicts",
    "msg.carrier": "carrier {key}",
    "msg.headers.none": "Header fields: none",
    "msg.headers.field": "Field",
    "msg.headers.value": "Value, and what the field means",
    "msg.headers.title": "Header fields ({n}, in the order sent)",
    "msg.headers.cut": ": only the first ones are kept",
    "msg.received.hop": "hop",
    "msg.received.route": "from → by (notes)",
    "msg.received.time": "time (UTC)",
    "msg.received.delay": "delay",
    "msg.received.title": ("Received chain ({n} hop, in path order: hop 1 is nearest the sender)",
        "Received chain ({n} hops, in path order: hop 1 is nearest the sender)"),
    "msg.mime.title": "MIME structure ({parts}, {attachments})",
    "msg.mime.parts": ("{n} part",
        "{n} parts"),
    "msg.mime.attachments": ("{n} attachment",
        "{n} attachments"),
    "msg.envelope.title": "Envelope vs header",
    "msg.envelope.same": "same address",
    "msg.envelope.differ": "differ: the envelope sender is not the author",
    "msg.envelope.differ_sender": "differ: the envelope sender is not the author or Sender",
    "msg.envelope.recipient": "recipient",
    "msg.envelope.header": "header",
    "msg.envelope.meaning": "meaning",
    "msg.envelope.yes_reply": "yes, {reply}",
    "msg.envelope.yes": "yes",
    "msg.envelope.bcc": "Bcc (in the envelope, in no To/Cc field): {bcc}",
    "msg.none": "none",
    "msg.part.sizes": "{encoded:,} bytes as sent → {decoded:,} decoded",
    "msg.part.overhead": "(base64 overhead {percent:+.1f} %)",
    "msg.part.container": ("({n} part, {bytes:,} bytes)",
        "({n} parts, {bytes:,} bytes)"),
    "msg.part.incomplete": "incomplete: the message ended before this part did",
    "msg.defects.none": "Parser defects: none",
    "msg.defects.title": "Parser defects ({n})",
    "msg.defects.more": "… and {n} more",
    # parser defects: the stdlib's defect names get a meaning, the summarizer's own phrases a wording
    "defect.StartBoundaryNotFoundDefect": "a multipart's first boundary never appears: its body is one opaque blob",
    "defect.CloseBoundaryNotFoundDefect": "a multipart is not closed (--boundary--): the message may be cut off",
    "defect.MissingHeaderBodySeparatorDefect": "a line that is not a header field ends the header without a "
    "blank line",
    "defect.NoBoundaryInMultipartDefect": "multipart without a boundary parameter: its parts cannot be separated",
    "defect.InvalidMultipartContentTransferEncodingDefect": "a multipart may only be 7bit, 8bit or binary",
    "defect.FirstHeaderLineIsContinuationDefect": "the header starts with a folded (indented) line",
    "defect.MisplacedEnvelopeHeaderDefect": "an mbox 'From ' line inside the header",
    "defect.InvalidHeaderDefect": "a header line without a field name and colon",
    "defect.InvalidBase64CharactersDefect": "characters outside the base64 alphabet were skipped",
    "defect.InvalidBase64PaddingDefect": "base64 padding is wrong: the last bytes may be damaged",
    "defect.InvalidBase64LengthDefect": "base64 ends with a dangling character: one byte is lost",
    "defect.line too long": "line too long",
    "defect.header too long": "header too long",
    "defect.nesting too deep": "nesting too deep",
    "defect.too many parts": "too many parts",
    "defect.too many parameters": "too many parameters",
    "defect.undecodable parameters": "undecodable parameters",
    "defect.uuencoded content hashed as sent": "uuencoded content hashed as sent",
    "defect.transfer encoding of embedded message ignored": ("the Content-Transfer-Encoding of an embedded "
        "message is ignored, as by the stdlib: it is parsed and hashed as sent"),
    "defect.too many header fields": "too many header fields",
    "defect.unknown charset": "unknown charset {charset}",
    "defect.part": "part",
    "defect.long lines": ("{n:,} line over {limit} characters (longest {longest:,})",
        "{n:,} lines over {limit} characters (longest {longest:,})"),
    "defect.field cut": "header field {name} cut to {kept:,} of {size:,} bytes",
    "env.mail_lost": "the capture lost the MAIL command: the envelope sender is unknown",
    "env.refused": "the server answered the message with {reply}: it was not accepted",
    "env.no_reply": "no reply to the message was seen: whether the server accepted it is unknown",
    "env.no_transaction": "no MAIL FROM/RCPT TO transaction was seen for this message",
    "env.append": "APPEND stores a message",
    "env.delivered_before": "the message was delivered before",
    "env.no_envelope": "{protocol} carries no envelope ({what}); ",
    "env.recorded": "Return-Path and Delivered-To record the one used at delivery",
    "env.not_recorded": "no Return-Path or Delivered-To field records it",
    "env.header_only_smtp": "header only: not a recipient of this transaction",
    "env.header_only": "header only",
    "env.null_sender": "MAIL FROM:<> is the null sender (bounces and other automatic replies)",
    "env.rejected": "rejected by the server: not delivered",
    "env.rejected_hidden": " (and in no To/Cc field)",
    "env.delivered_hidden": "delivered here but in no To/Cc field: a Bcc, an alias or a mailing list",
    "env.bcc_left": "Bcc, but the Bcc field was left in the message: every recipient can read it",
    "env.bcc": "Bcc (envelope only)",
    "html.st.bytes_note": "Bytes: whole frames on the first line, TCP payload below it (UDP payload for DNS over UDP).",
    "html.extensions": ("what the 1 extension offered means", "what the {n} extensions offered mean"),
    "html.st.complete": "{count} ({complete} complete)",
    "html.st.size": "Size median / p95 / max",
    "html.st.attachments": "Attachments",
    "html.st.decoded": "{bytes} decoded",
    "html.st.attachment_size": "Attachment median / max",
    "html.st.b64_parts": "Base64 parts",
    "html.st.b64_sizes": "{parts}: {sent} as sent, {decoded} decoded",
    "html.st.b64_overhead": "Base64 overhead",
    "html.st.b64_why": "— 4 characters for every 3 bytes, plus line breaks",
    "html.st.b64_chart": "Base64 parts: content and encoding overhead, as shares of the bytes sent",
    "html.st.b64_of_decoded": "+{percent} % of the decoded size",
    "html.st.attempts": "Attempts",
    "html.st.cleartext": "{n} in cleartext",
    "html.st.outcomes": "Outcomes",
    "html.st.mechanisms": "Mechanisms",
    "html.st.users": "Users",
    "html.st.class": "Class",
    "html.st.total": "Total",
    "html.st.code": "Code",
    "html.st.count": "Count",
    "html.st.meaning5321": "Meaning (RFC 5321 and extensions)",
    "html.st.enhanced": "Enhanced code",
    "html.st.meaning3463": "Meaning (RFC 3463)",
    "html.st.what": "What",
    "html.st.median": "Median",
    "html.st.max": "Max",
    "html.st.hierarchy": "Protocol hierarchy",
    "html.st.payload": "Payload",
    "html.st.tls_share": "TLS share",
    "html.st.decrypted": "Decrypted",
    "html.st.intro": "The statistics of the JSON report (“stats”, the same as <code>mailtrace stats</code>): counted "
                     "over the sessions of this report. Charts show the largest values; hover a bar for its label "
                     "and count.",
    "html.st.approximate": "Approximate (too many distinct values to count exactly): {names}.",
    "html.st.replies_explain": "RFC 5321 §4.2.1 reads a reply code digit by digit: the first says how it went (2yz "
                               "done, 3yz go on, 4yz try again later, 5yz failed for good), the second what it is "
                               "about (x0z syntax, x1z information, x2z connection, x5z mail system).",
    "html.st.timing_explain": "Latency: from a command to the first packet of the reply that answers it "
                              "(Wireshark's response time). Logarithmic axis: the bar reaches the 95th percentile, "
                              "the line marks the median, the square the maximum.",
    "html.st.sampled": "Medians and percentiles come from a sample (many values).",
    # ------------------------------------------------------------------ statistics tables (stats, analyze --stats)
    "stats.capture": "Capture",
    "stats.value": "value",
    "stats.files": "files",
    "stats.packets": "packets",
    "stats.bytes": "bytes",
    "stats.sessions": "sessions",
    "stats.first_packet": "first packet (UTC)",
    "stats.last_packet": "last packet (UTC)",
    "stats.duration": "duration",
    "stats.protocol": "protocol",
    "stats.pct_packets": "% packets",
    "stats.hierarchy.frames": "frames",
    "stats.hierarchy.other_tcp": "other tcp",
    "stats.hierarchy.not_tcp": "not tcp",
    "stats.hierarchy.other": "other",
    "stats.bytes_note": "bytes: whole frames on the first line, TCP payload below it (UDP payload for dns (udp))",
    "stats.mail_protocols": "Mail protocols",
    "stats.payload": "payload",
    "stats.tls_sessions": "TLS sessions",
    "stats.decrypted": "decrypted",
    "stats.servers": "Top servers (top {top})",
    "stats.clients": "Top clients (top {top})",
    "stats.server": "server",
    "stats.client": "client",
    "stats.command": "command",
    "stats.count": "count",
    "stats.enhanced": "SMTP enhanced status codes (RFC 3463)",
    "stats.code": "code",
    "stats.responses": "POP3 / IMAP responses",
    "stats.status": "status",
    "stats.continuation": "+ (continuation)",
    "stats.messages": "messages",
    "stats.complete": "complete",
    "stats.size": "size median / p95 / max",
    "stats.attachments": "attachments",
    "stats.decoded_bytes": "decoded bytes",
    "stats.b64_parts": "base64 parts",
    "stats.b64_sizes": "encoded / decoded",
    "stats.b64_overhead": "overhead",
    "stats.attempts": "attempts",
    "stats.outcome.succeeded": "succeeded",
    "stats.outcome.failed": "failed",
    "stats.outcome.unknown": "unknown",
    "stats.cleartext": "in cleartext",
    "stats.mechanism": "mechanism {mechanism}",
    "stats.user": "user {user}",
    "stats.addresses": "Top addresses (top {top})",
    "stats.senders": "senders (MAIL FROM)",
    "stats.recipients": "recipients (RCPT TO)",
    "stats.sender_domains": "sender domains",
    "stats.recipient_domains": "recipient domains",
    "stats.timing": "Session durations and reply latency",
    "stats.what": "what",
    "stats.median": "median",
    "stats.max": "max",
    "stats.session_duration": "session duration",
    "stats.latency_row": "{what} → reply",
    "stats.timeline": "Sessions over time ({seconds} s buckets)",
    "stats.from": "from (UTC)",
    "stats.dnsbl.listed": "listed (127.0.0.x)",
    "stats.dnsbl.not_listed": "not listed (NXDOMAIN)",
    "stats.dnsbl.unanswered": "no answer seen",
    "stats.dnsbl.other": "other answer (error, no 127.0.0.x)",
    "stats.dnsbl.zone": "on {zone}",
    "stats.findings": "Findings",
    "stats.finding": "finding",
    "stats.approximate": "approximate (too many distinct values to count exactly): {names}",
    "stats.replies": "SMTP replies by class and category (RFC 5321 §4.2.1)",
    "stats.class": "class",
    "stats.total": "total",
    "stats.codes": "codes",
    "stats.class.1": "positive preliminary",
    "stats.class.2": "positive completion",
    "stats.class.3": "positive intermediate",
    "stats.class.4": "transient negative",
    "stats.class.5": "permanent negative",
    "stats.category.0": "syntax",
    "stats.category.1": "information",
    "stats.category.2": "connections",
    "stats.category.3": "unspecified",
    "stats.category.4": "unspecified",
    "stats.category.5": "mail system",
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
    if lang in _DECIMAL_COMMA:
        params = {k: _DecimalComma(v) if type(v) in (int, float) else v for k, v in params.items()}
    return message.format_map(_Lenient(params))


_DECIMAL_COMMA = frozenset({"de"})
"""Languages that group thousands with a dot and write decimals with a comma."""


class _DecimalComma:
    """A number that formats as German writes it: ``{n:,}`` gives ``28.450``, ``{s:.3f}`` gives ``0,091``."""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec).translate(_SWAP_SEPARATORS)


_SWAP_SEPARATORS = str.maketrans(",.", ".,")


def fmt_num(n: int | float, lang: str = "en") -> str:
    """A count with its thousands grouped as the language writes them (``1,234``; ``1.234`` in German)."""
    out = f"{n:,}"
    return out.translate(_SWAP_SEPARATORS) if lang in _DECIMAL_COMMA else out


def outcome_counts(counts: dict[str, int], lang: str = "en") -> str:
    """``12 failed, 3 succeeded``: login outcomes counted (``Session.logins_dropped``), in the language."""
    return ", ".join(f"{fmt_num(n, lang)} {text('stats.outcome.' + outcome, lang)}" for outcome, n in counts.items()
                     if n and outcome in ("succeeded", "failed", "unknown"))


def localize_number(formatted: str, lang: str = "en") -> str:
    """A number already formatted the English way (``28,450.5``), with the language's separators."""
    return formatted.translate(_SWAP_SEPARATORS) if lang in _DECIMAL_COMMA else formatted


Words = Callable[..., str]
"""A view's words: ``t("size")`` is ``text(prefix + "size", lang)``."""


def words(lang: str, prefix: str = "") -> Words:
    """The catalogue bound to one language (and key prefix), for modules that pass it around."""

    def t(key: str, /, **params: Any) -> str:
        return text(prefix + key, lang, **params)

    return t
