"""Hide credentials in a raw transcript the way the other views hide them.

The table, the JSON and the HTML report show a login as the dissectors render it (``PASS [password]``,
``AUTH PLAIN [initial response]``, ``C: [SASL response]``) unless ``--show-secrets`` is given. The raw
conversation of ``--follow`` is bytes, so it gets the same treatment here, line by line, with a small
state machine per session: a login command's secret part is replaced, and while a SASL exchange (or an
IMAP LOGIN sent as literals) is in progress every client line is, until the server answers with
something other than a continuation (``334`` in SMTP, ``+`` in POP3 and IMAP).
"""

from __future__ import annotations

import re

SASL_RESPONSE = b"[SASL response]"
CREDENTIALS = b"[credentials]"


class CredentialRedactor:
    """Feed it a session's lines in transcript order; it returns each line as it may be shown."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self._mask: bytes | None = None
        """What a client line becomes while an exchange of secrets is in progress (None: none is)."""
        self._data = False
        """Inside SMTP message data (after DATA, until the lone dot): lines are content, not commands."""
        self._literal_left = 0
        """Bytes of an IMAP literal still to come from the client (APPEND's message): content too."""

    def client(self, line: bytes) -> bytes:
        if self._data:
            self._data = line != b"."
            return line
        if self._literal_left > 0:
            self._literal_left -= len(line) + 2  # the CRLF the transcript's lines drop
            return line
        if self._mask is not None:
            return line if line.strip() == b"*" else self._mask  # "*" cancels a SASL exchange
        if self.protocol == "imap":
            return self._imap(line)
        words = line.split(None, 2)
        if not words:
            return line
        verb = words[0].upper()
        if verb == b"AUTH" and len(words) >= 2:
            self._mask = SASL_RESPONSE
            if len(words) == 3 and words[2].strip() != b"=":
                return b"%s %s [initial response]" % (words[0], words[1])
        elif self.protocol == "pop3" and verb == b"PASS" and len(words) >= 2:
            return words[0] + b" [password]"
        elif self.protocol == "pop3" and verb == b"APOP" and len(words) >= 3:
            return b"%s %s [digest]" % (words[0], words[1])
        elif self.protocol == "smtp" and verb == b"DATA" and len(words) == 1:
            self._data = True
        return line

    def server(self, line: bytes) -> None:
        if self._data and line[:1] in (b"4", b"5"):
            self._data = False  # DATA refused: what the client sends next are commands again
        if self._mask is None:
            return
        continuation = line[:3] == b"334" if self.protocol == "smtp" else line == b"+" or line[:2] == b"+ "
        if not continuation:
            self._mask = None

    def _imap(self, line: bytes) -> bytes:
        words = line.split(None, 2)
        if len(words) < 3:
            return line
        tag, verb, rest = words[0], words[1].upper(), words[2]
        if verb == b"AUTHENTICATE":
            self._mask = SASL_RESPONSE
            mech, _, initial = rest.partition(b" ")
            if initial.strip() and initial.strip() != b"=":
                return b"%s %s %s [initial response]" % (tag, words[1], mech)
            return line
        if verb != b"LOGIN":
            literal = _LITERAL_AT_END.search(line)
            if literal is not None:  # APPEND's message (or any literal): its lines are content
                self._literal_left = int(literal.group(1))
            return line
        user_end = _astring_end(rest)
        if user_end is None:  # the user name is a literal: what follows comes in continuation lines
            self._mask = CREDENTIALS
            return line
        password = rest[user_end:].strip()
        if password.startswith(b"{") and password.endswith(b"}"):
            self._mask = CREDENTIALS  # the password comes as a literal in the next client line
            return line
        return b"%s %s %s [password]" % (tag, words[1], rest[:user_end])


_LITERAL_AT_END = re.compile(rb"\{(\d{1,12})\+?\}$")


def _astring_end(text: bytes) -> int | None:
    """Where the first IMAP astring of ``text`` ends (a quoted string or an atom); None for a literal."""
    if text.startswith(b"{"):
        return None
    if not text.startswith(b'"'):
        space = text.find(b" ")
        return len(text) if space < 0 else space
    i = 1
    while i < len(text):
        if text[i] == 0x5C:  # backslash: the next character is quoted
            i += 2
            continue
        if text[i] == 0x22:
            return i + 1
        i += 1
    return len(text)
