"""One TLS connection, observed from the first TLS byte on: metadata always, plaintext with keys.

Sans-I/O: :meth:`TlsSession.feed` takes the reassembled stream items of both directions in
capture order and returns plaintext ``Chunk`` values, plaintext ``StreamGap`` values (application
data lost with the records a TCP gap cut) and :mod:`~mailtrace.tls.events`. It never
raises on peer input. Memory is bounded: one record per direction (``max_record``) and one
handshake message per direction (``max_handshake``).

Key schedule, per direction (RFC 8446 §7, RFC 5246 §6.3)::

    TLS 1.3  ServerHello ─▶ *_HANDSHAKE_TRAFFIC_SECRET ─Finished▶ *_TRAFFIC_SECRET_0 ─KeyUpdate▶ next ...
    TLS 1.2  ServerHello: key block from CLIENT_RANDOM (master secret) ─ChangeCipherSpec▶ in use
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from mailtrace.model import Chunk, Direction, Eof, StreamGap
from mailtrace.tls import keylog as kl
from mailtrace.tls.certs import CertInfo, describe_certificate
from mailtrace.tls.events import (
    AlertInfo,
    Decrypted,
    HandshakeComplete,
    HandshakeSeen,
    OpaqueData,
    TlsAlert,
    TlsAnomaly,
    TlsEvent,
    TlsInfo,
)
from mailtrace.tls.handshake import (
    ClientHello,
    DecodeError,
    HandshakeReassembler,
    Oversize,
    ServerHello,
    parse_certificates,
    parse_client_hello,
    parse_encrypted_extensions,
    parse_key_update,
    parse_server_hello,
)
from mailtrace.tls.keylog import KeyLog
from mailtrace.tls.names import (
    ALERT,
    ALERT_LEVELS,
    APPLICATION_DATA,
    CHANGE_CIPHER_SPEC,
    HANDSHAKE,
    HEARTBEAT,
    alert_name,
    cipher_name,
    handshake_name,
    is_grease,
    version_name,
)
from mailtrace.tls.records import HEADER_LEN, Problem, ProblemKind, Record, RecordReader
from mailtrace.tls.suites import SuiteParams, suite_params

if TYPE_CHECKING:
    from mailtrace.tls.crypto import Opened, RecordCipher


def _crypto() -> ModuleType:
    """The record ciphers, loaded (with ``cryptography``) only when a key log opens a session."""
    from mailtrace.tls import crypto

    return crypto

Output = Chunk | StreamGap | TlsEvent

MAX_ANOMALIES_KEPT = 64
"""Anomaly kinds kept in :attr:`TlsInfo.anomalies` (events are still all returned)."""
MAX_ALERTS_KEPT = 64
"""Alerts kept in :attr:`TlsInfo.alerts` (a stream of 7-byte alert records made 100,000 of them, 9 MB of
JSON from a 0.7 MB capture); the rest are counted in ``alerts_dropped``."""
MAX_SEQ_SEARCH = 4096
"""After losing records: how many sequence numbers to try on the next protected record."""
_KEY_UPDATE = "secret after a KeyUpdate"
_MIN_RECORD = 21
"""Smallest protected record (header + tag): bounds how many records a gap can have held."""


class _Side:
    """The state of one direction."""

    __slots__ = (
        "broken",
        "cipher",
        "direction",
        "finished",
        "gap_bytes",
        "gap_frame",
        "gap_overhead",
        "gap_records",
        "gap_seq",
        "gap_start",
        "gap_told",
        "gap_ts",
        "hs",
        "key_fits",
        "key_label",
        "nbytes",
        "pending",
        "protected",
        "reader",
        "secret",
        "seq",
        "seq_slack",
    )

    def __init__(self, direction: Direction, max_record: int, max_handshake: int) -> None:
        self.direction = direction
        self.reader = RecordReader(max_record)
        self.hs = HandshakeReassembler(max_handshake)
        self.cipher: RecordCipher | None = None
        """Decrypts this side's protected records now."""
        self.pending: RecordCipher | None = None
        """TLS ≤ 1.2: the cipher that ChangeCipherSpec puts in use."""
        self.secret: bytes | None = None
        """TLS 1.3: the current traffic secret (for Finished and KeyUpdate)."""
        self.key_label = ""
        """Where the key in use comes from (a key log label), for the anomaly when it does not fit."""
        self.key_fits = False
        """A record authenticated with the key in use."""
        self.protected = False
        """This side's records are encrypted from here on."""
        self.seq = 0
        self.seq_slack = 0
        """How many records may have been lost before the next one (0: none)."""
        self.broken = False
        """Decryption failed once: this side stays opaque to the end."""
        self.finished = False
        self.nbytes = 0
        self.gap_start: int | None = None
        """Application data was lost here (stream offset of the first lost record) and the dissector
        has not been told yet: see :meth:`TlsSession._flush_gap`."""
        self.gap_seq = 0
        """Sequence number of the first lost record."""
        self.gap_records: int | None = None
        """How many records were lost, once the next record authenticated (None: not known yet)."""
        self.gap_bytes = 0
        """Stream bytes of the lost records (headers included), once ``gap_records`` is known."""
        self.gap_overhead = 0
        self.gap_told = 0
        """Records already told lost (estimated) that ``seq`` has not moved past: a new loss starts after them."""
        self.gap_ts = 0.0
        self.gap_frame = 0


class TlsSession:
    """Observes one TCP connection's TLS; see the module docstring."""

    def __init__(
        self, keylog: KeyLog | None = None, *, max_record: int = 18432 + 2048, max_handshake: int = 1 << 17
    ) -> None:
        self._keylog = keylog
        self._sides = {
            Direction.CLIENT: _Side(Direction.CLIENT, max_record, max_handshake),
            Direction.SERVER: _Side(Direction.SERVER, max_record, max_handshake),
        }
        self._out: list[Output] = []
        self._ts = 0.0
        self._frame: int | None = None
        self._ch: ClientHello | None = None
        """The first ClientHello (the metadata shown)."""
        self._keys_ch: ClientHello | None = None
        """The latest ClientHello: its random names the keys (renegotiation brings a new one)."""
        self._sh: ServerHello | None = None
        self._params: SuiteParams | None = None
        self._version: int | None = None
        self._certs: list[CertInfo] = []
        self._alerts: list[AlertInfo] = []
        self._alerts_dropped = 0
        self._anomalies: list[str] = []
        self._first_frame: int | None = None
        self._first_ts: float | None = None
        self._hello_ts: float | None = None
        self._handshake_seconds: float | None = None
        self._established = False
        self._decrypted = False
        """Application data was decrypted (what :attr:`TlsInfo.decrypted` reports)."""
        self._handshake_decrypted = False
        """A protected handshake record (TLS 1.3 server flight, TLS ≤ 1.2 Finished) was decrypted."""
        self._resumed = False
        self._saw_client_key_exchange = False
        self._alpn_selected: str | None = None
        self._key_updates = 0

    # ------------------------------------------------------------------ public API

    def feed(self, item: Chunk | StreamGap | Eof) -> list[Chunk | StreamGap | TlsEvent]:
        """Take one stream item; return plaintext chunks, plaintext gaps and events, in order.

        A ``StreamGap`` in the output means application data of a decrypted direction was lost
        with records a TCP gap cut: its ``nbytes`` is the plaintext size of those records (exact
        for AEAD suites once the next record authenticates, else estimated), its ``frame`` the
        frame of the TCP gap. It comes before the next plaintext of either direction (or at the
        end of its direction), so the dissector reads on from a known loss instead of gluing
        the bytes before and after it."""
        out: list[Output] = []
        self._out = out
        self._ts, self._frame = item.ts, item.frame
        side = self._sides[item.direction]
        if isinstance(item, Chunk):
            if not item.data:
                return out
            if self._first_frame is None:
                self._first_frame, self._first_ts = item.frame, item.ts
            side.nbytes += len(item.data)
            if side.reader.dead:
                self._emit_opaque(side, len(item.data), 0)
                return out
            for rec in side.reader.feed(item.data):
                if isinstance(rec, Problem):
                    self._problem(side, rec)
                else:
                    self._record(side, rec)
        elif isinstance(item, StreamGap):
            self._gap(side, item)
        else:
            dropped = side.reader.eof()
            if dropped:
                self._anomaly(side, "truncated-record", f"stream ended {dropped} bytes into a record")
            side.hs.reset()
            self._flush_gap(side)
        return out

    @property
    def handshake_decrypted(self) -> bool:
        """At least one protected handshake record was decrypted with the key log.

        True with :attr:`TlsInfo.decrypted` false is the "handshake only" case: the key log had
        the TLS 1.3 handshake traffic secrets but not the application traffic secrets, or the
        connection ended before any application data.
        """
        return self._handshake_decrypted

    @property
    def info(self) -> TlsInfo:
        ch, client, server = self._ch, self._sides[Direction.CLIENT], self._sides[Direction.SERVER]
        if ch is None:
            versions: tuple[str, ...] = ()
        elif ch.supported_versions:
            versions = tuple(version_name(v) for v in ch.supported_versions if not is_grease(v))
        else:
            versions = (version_name(ch.legacy_version),)
        return TlsInfo(
            sni=ch.sni if ch else None,
            client_versions=versions,
            cipher_suites_offered=len(ch.cipher_suites) if ch else 0,
            alpn=ch.alpn if ch else (),
            alpn_selected=self._alpn_selected,
            version=version_name(self._version) if self._version is not None else None,
            cipher=cipher_name(self._sh.cipher_suite) if self._sh else None,
            resumed=self._resumed,
            certificates=tuple(self._certs),
            alerts=tuple(self._alerts),
            alerts_dropped=self._alerts_dropped,
            bytes_client=client.nbytes,
            bytes_server=server.nbytes,
            handshake_seconds=self._handshake_seconds,
            established=self._established,
            decrypted=self._decrypted,
            key_updates=self._key_updates,
            first_frame=self._first_frame,
            first_ts=self._first_ts,
            anomalies=tuple(self._anomalies),
            handshake_decrypted=self._handshake_decrypted,
        )

    # ------------------------------------------------------------------ output

    def _event(self, side: _Side, cls: type[TlsEvent], **fields: object) -> None:
        self._out.append(cls(direction=side.direction, ts=self._ts, frame=self._frame, **fields))

    def _anomaly(self, side: _Side, kind: str, detail: str) -> None:
        if len(self._anomalies) < MAX_ANOMALIES_KEPT:
            self._anomalies.append(kind)
        self._out.append(
            TlsAnomaly(direction=side.direction, ts=self._ts, frame=self._frame, kind=kind, detail=detail)
        )

    def _emit_opaque(self, side: _Side, nbytes: int, records: int) -> None:
        """Report unreadable bytes, merged with the previous report of the same segment."""
        last = self._out[-1] if self._out else None
        if isinstance(last, OpaqueData) and last.direction is side.direction and last.frame == self._frame:
            self._out[-1] = OpaqueData(
                direction=side.direction,
                ts=self._ts,
                frame=self._frame,
                nbytes=last.nbytes + nbytes,
                records=last.records + records,
            )
            return
        self._out.append(
            OpaqueData(
                direction=side.direction, ts=self._ts, frame=self._frame, nbytes=nbytes, records=records
            )
        )

    def _emit_plaintext(self, side: _Side, data: bytes) -> None:
        """Report decrypted application data, merged per segment into one Decrypted + one Chunk."""
        for s in self._sides.values():  # losses the dissector must know of before it reads on
            self._flush_gap(s)
        frame = self._frame if self._frame is not None else 0
        out = self._out
        if len(out) >= 2:
            ev, chunk = out[-2], out[-1]
            if (
                isinstance(ev, Decrypted)
                and isinstance(chunk, Chunk)
                and chunk.direction is side.direction
                and chunk.frame == frame
            ):
                out[-2] = Decrypted(
                    direction=side.direction,
                    ts=self._ts,
                    frame=self._frame,
                    nbytes=ev.nbytes + len(data),
                    records=ev.records + 1,
                )
                out[-1] = Chunk(side.direction, chunk.data + data, self._ts, frame)
                return
        out.append(Decrypted(direction=side.direction, ts=self._ts, frame=self._frame, nbytes=len(data)))
        out.append(Chunk(side.direction, data, self._ts, frame))

    # ------------------------------------------------------------------ stream level

    def _problem(self, side: _Side, problem: Problem) -> None:
        if problem.kind is ProblemKind.SKIPPED:
            self._emit_opaque(side, problem.nbytes, 0)
            return
        self._anomaly(side, problem.kind.value, problem.detail)
        if problem.nbytes:
            self._emit_opaque(side, problem.nbytes, 0)
        if problem.kind in (ProblemKind.BAD_HEADER, ProblemKind.OVERSIZE):
            side.seq_slack = max(side.seq_slack, 8)

    def _gap(self, side: _Side, gap: StreamGap) -> None:
        nbytes = gap.nbytes
        if side.gap_records is not None:
            self._flush_gap(side)  # an earlier loss whose extent is known: tell it first
        if side.gap_start is None and side.finished and side.cipher is not None and not side.broken:
            # Application data of a decrypted direction is lost: the dissector will be told.
            side.gap_start, side.gap_seq, side.gap_records = side.reader.consumed, side.seq + side.gap_told, None
            side.gap_overhead, side.gap_ts, side.gap_frame = side.cipher.overhead, gap.ts, gap.frame
        lost = side.reader.gap(nbytes)
        side.hs.reset()
        if lost == 1:
            self._anomaly(side, "gap-in-record", f"{nbytes} bytes lost inside a record; it is skipped")
        else:
            self._anomaly(side, "gap", f"{nbytes} bytes lost; looking for the next record header")
        if side.cipher is not None:
            if lost is None:
                bound = nbytes // _MIN_RECORD + 2 if nbytes > 0 else MAX_SEQ_SEARCH
                side.seq_slack = min(MAX_SEQ_SEARCH, side.seq_slack + bound)  # losses add up
            else:
                side.seq += lost

    # ------------------------------------------------------------------ record level

    @property
    def _tls13(self) -> bool:
        return self._version is not None and (self._version == 0x0304 or self._version >> 8 == 0x7F)

    def _record(self, side: _Side, rec: Record) -> None:
        if rec.content_type == CHANGE_CIPHER_SPEC:
            self._change_cipher_spec(side)
            return
        if not side.protected or (self._tls13 and rec.content_type != APPLICATION_DATA):
            # TLS 1.3 protects only type-23 records; a plain alert can still come from a peer
            # that failed before it had keys.
            self._content(side, rec.content_type, rec.payload, encrypted=False)
            return
        opened = self._open(side, rec)
        if opened is None:
            self._opaque_record(side, rec)
            return
        self._content(side, opened.content_type, opened.plaintext, encrypted=True)

    def _open(self, side: _Side, rec: Record) -> Opened | None:
        if side.cipher is None or side.broken:
            return None
        seqs = range(side.seq, side.seq + 1 + side.seq_slack)
        opened = side.cipher.open(rec.header, rec.payload, seqs)
        if opened is None:
            side.broken = True
            side.cipher = None
            self._flush_gap(side)
            self._decrypt_failed(side, rec, len(seqs))
            return None
        side.key_fits = True
        if side.gap_start is not None and side.gap_records is None:
            side.gap_bytes = lost = rec.start - side.gap_start
            # records lost since the last one read, less those already told (estimated) as lost;
            # no more than the lost bytes can hold (each record has a header, overhead, a byte)
            most = max(1, lost // (HEADER_LEN + side.gap_overhead + 1))
            side.gap_records = min(max(1, opened.seq - side.gap_seq), most)
        side.gap_told = 0
        side.seq = opened.seq + 1
        side.seq_slack = 0
        if opened.content_type == HANDSHAKE:
            self._handshake_decrypted = True
        return opened

    def _decrypt_failed(self, side: _Side, rec: Record, tried: int) -> None:
        """Say why a record did not authenticate: a key that never fitted, or loss or damage."""
        if side.seq_slack:
            why = f"does not authenticate (tried {tried} sequence numbers after lost data)"
        elif not side.key_fits and side.key_label == _KEY_UPDATE:
            why = "is the first after a KeyUpdate and does not authenticate with the next secret"
        elif not side.key_fits and side.key_label:
            why = (f"is the first under the key log's {side.key_label} and does not authenticate: "
                   "the logged secret does not fit this session (wrong key)")
        else:
            why = f"does not authenticate with the logged key ({side.key_label or 'key'}): damaged or cut"
        self._anomaly(side, "decrypt-failed",
                      f"record {side.seq} ({len(rec.payload)} bytes) {why}; the rest stays opaque")

    def _flush_gap(self, side: _Side) -> None:
        """Tell the dissector (as a plaintext ``StreamGap``) about application data lost in a gap."""
        start = side.gap_start
        if start is None:
            return
        if side.gap_records is None:  # the next record has not authenticated yet: estimate
            lost = side.reader.consumed + side.reader.skip_left - start
            records = max(1, side.seq - side.gap_seq)
            side.gap_told = side.gap_seq + records - side.seq
        else:
            lost, records = side.gap_bytes, side.gap_records
        side.gap_start, side.gap_records = None, None
        plain = max(1, lost - records * (HEADER_LEN + side.gap_overhead))
        self._out.append(StreamGap(side.direction, plain, side.gap_ts, side.gap_frame))

    def _opaque_record(self, side: _Side, rec: Record) -> None:
        """A protected record we cannot read: name it by its position where that is certain."""
        if rec.content_type == ALERT:
            self._alert(side, "encrypted", "encrypted")
            return
        if rec.content_type == HANDSHAKE:  # TLS ≤ 1.2 after ChangeCipherSpec: Finished first
            self._event(side, HandshakeSeen, kind="encrypted_handshake", encrypted=True)
            self._mark_finished(side)
            return
        if self._tls13 and not self._established:
            # TLS 1.3 hides the handshake in type-23 records: the server's flight ends with its
            # Finished, and the client's first protected record is its Finished.
            self._event(side, HandshakeSeen, kind="encrypted_handshake", encrypted=True)
            self._mark_finished(side)
            return
        self._emit_opaque(side, len(rec.payload), 1)

    def _change_cipher_spec(self, side: _Side) -> None:
        self._event(side, HandshakeSeen, kind="change_cipher_spec")
        if self._tls13:
            return  # middlebox compatibility only (RFC 8446 §D.4)
        if side.direction is Direction.SERVER and not self._saw_client_key_exchange and self._sh is not None:
            self._resumed = True  # abbreviated handshake: the server changes ciphers first
        side.protected = True
        side.cipher, side.pending = side.pending, None
        side.seq, side.key_fits, side.key_label = 0, False, "CLIENT_RANDOM master secret"
        side.hs.reset()

    def _content(self, side: _Side, ctype: int, data: bytes, *, encrypted: bool) -> None:
        if ctype == HANDSHAKE:
            for msg in side.hs.feed(data):
                if isinstance(msg, Oversize):
                    self._anomaly(
                        side,
                        "handshake-too-long",
                        f"{handshake_name(msg.msg_type)} of {msg.length} bytes exceeds the limit; skipped",
                    )
                else:
                    self._handshake(side, msg[0], msg[1], encrypted=encrypted)
        elif ctype == ALERT:
            if len(data) < 2 or len(data) % 2:
                self._anomaly(side, "bad-alert", f"alert record of {len(data)} bytes")
            for i in range(0, len(data) - 1, 2):
                self._alert(side, ALERT_LEVELS.get(data[i], f"level_{data[i]}"), alert_name(data[i + 1]))
        elif ctype == APPLICATION_DATA:
            if encrypted:
                self._decrypted = True  # application data, not just the handshake
                self._emit_plaintext(side, data)
            else:
                self._emit_opaque(side, len(data), 1)
        elif ctype == HEARTBEAT:
            self._anomaly(side, "heartbeat", f"heartbeat record of {len(data)} bytes")
        elif encrypted and ctype == 0:
            self._anomaly(side, "empty-inner-plaintext", "a TLS 1.3 record decrypted to padding only")
        else:
            self._anomaly(side, "unexpected-content-type", f"content type {ctype} ({len(data)} bytes)")

    def _alert(self, side: _Side, level: str, description: str) -> None:
        if len(self._alerts) < MAX_ALERTS_KEPT:
            self._alerts.append(AlertInfo(side.direction.value, level, description, self._frame))
        else:
            self._alerts_dropped += 1
        self._event(side, TlsAlert, level=level, description=description)

    # ------------------------------------------------------------------ handshake level

    def _handshake(self, side: _Side, msg_type: int, body: bytes, *, encrypted: bool) -> None:
        kind = handshake_name(msg_type)
        try:
            detail = self._handshake_message(side, msg_type, body)
        except (DecodeError, ValueError) as exc:
            self._anomaly(side, "bad-handshake", f"{kind}: {exc}")
            detail = "malformed"
        self._event(side, HandshakeSeen, kind=kind, detail=detail, encrypted=encrypted)
        if msg_type == 20:
            self._after_finished(side)

    def _handshake_message(self, side: _Side, msg_type: int, body: bytes) -> str:
        if msg_type == 1:
            ch = parse_client_hello(body)
            if self._ch is None or self._ch.random == ch.random:  # first, or again after HRR
                self._ch = ch
            self._keys_ch = ch
            if self._hello_ts is None:
                self._hello_ts = self._ts
            return f"SNI {ch.sni}" if ch.sni else ""
        if msg_type == 2:
            sh = parse_server_hello(body)
            if sh.hello_retry:
                # TLS 1.3 only: its ChangeCipherSpec is cosmetic and a second ClientHello follows.
                self._version = sh.version
                return f"hello retry request, {cipher_name(sh.cipher_suite)}"
            self._server_hello(side, sh)
            return f"{version_name(sh.version)}, {cipher_name(sh.cipher_suite)}"
        if msg_type == 11:
            return self._certificate(side, body)
        if msg_type == 8:
            self._alpn_selected = parse_encrypted_extensions(body) or self._alpn_selected
            return f"ALPN {self._alpn_selected}" if self._alpn_selected else ""
        if msg_type == 16:
            self._saw_client_key_exchange = True
        elif msg_type == 24:
            return self._key_update(side, body)
        return ""

    def _certificate(self, side: _Side, body: bytes) -> str:
        sent_by = side.direction.value
        ders = parse_certificates(body, tls13=self._tls13)
        described: list[CertInfo] = []
        for der in ders:
            try:
                described.append(describe_certificate(der, sent_by=sent_by))
            except Exception as exc:
                self._anomaly(side, "bad-certificate", f"{len(der)}-byte certificate does not parse: "
                              f"{exc or type(exc).__name__}")
        known = {(c.sha256, c.sent_by) for c in self._certs}  # renegotiation sends the chain again
        self._certs += [c for c in described if (c.sha256, c.sent_by) not in known]
        return described[0].subject if described else f"{len(ders)} certificates"

    def _server_hello(self, side: _Side, sh: ServerHello) -> None:
        self._sh = sh
        self._version = sh.version
        self._params = params = suite_params(sh.cipher_suite)
        self._alpn_selected = sh.alpn
        ch = self._keys_ch
        client, server = self._sides[Direction.CLIENT], self._sides[Direction.SERVER]
        if self._tls13:
            self._resumed = sh.psk
            server.protected = client.protected = True
        elif ch is not None and sh.session_id and sh.session_id == ch.session_id:
            self._resumed = True
        if self._keylog is None:
            return
        if ch is None:
            self._anomaly(side, "no-client-hello", "no ClientHello was seen, so its keys cannot be found")
            return
        if ch.random not in self._keylog:
            self._anomaly(side, "no-keys", f"the key log has no secrets for client random {ch.random.hex()}")
            return
        if params is None or (self._tls13 and sh.version != 0x0304) or sh.version < 0x0301:
            self._anomaly(
                side,
                "unsupported-cipher",
                f"cannot decrypt {cipher_name(sh.cipher_suite)} with {version_name(sh.version)}",
            )
            return
        if self._tls13:
            c_secret = self._keylog.get(ch.random, kl.CLIENT_HANDSHAKE_TRAFFIC_SECRET)
            s_secret = self._keylog.get(ch.random, kl.SERVER_HANDSHAKE_TRAFFIC_SECRET)
            if c_secret is None or s_secret is None:
                self._anomaly(side, "no-keys", "the key log lacks the TLS 1.3 handshake traffic secrets")
                return
            for s, secret, label in ((client, c_secret, kl.CLIENT_HANDSHAKE_TRAFFIC_SECRET),
                                     (server, s_secret, kl.SERVER_HANDSHAKE_TRAFFIC_SECRET)):
                s.secret, s.cipher, s.seq = secret, _crypto().Tls13Cipher(params, secret), 0
                s.key_label, s.key_fits = label, False
            return
        master = self._keylog.get(ch.random, kl.CLIENT_RANDOM)
        if master is None:
            self._anomaly(side, "no-keys", "the key log has no CLIENT_RANDOM master secret for this session")
            return
        client.pending, server.pending = _crypto().tls12_ciphers(
            params,
            version=sh.version,
            master_secret=master,
            client_random=ch.random,
            server_random=sh.random,
            etm=sh.encrypt_then_mac,
        )

    def _after_finished(self, side: _Side) -> None:
        if self._tls13 and side.cipher is not None and self._keylog is not None and self._keys_ch is not None:
            assert self._params is not None
            client = side.direction is Direction.CLIENT
            label = kl.CLIENT_TRAFFIC_SECRET_0 if client else kl.SERVER_TRAFFIC_SECRET_0
            secret = self._keylog.get(self._keys_ch.random, label)
            if secret is None:
                side.cipher = None
                self._anomaly(side, "no-keys", f"the key log lacks {label}")
            else:
                side.secret, side.cipher, side.seq = secret, _crypto().Tls13Cipher(self._params, secret), 0
                side.key_label, side.key_fits = label, False
        self._mark_finished(side)

    def _key_update(self, side: _Side, body: bytes) -> str:
        requested = parse_key_update(body)
        self._key_updates += 1
        if side.secret is not None and self._params is not None and side.cipher is not None:
            side.secret = _crypto().tls13_next_secret(self._params, side.secret)
            side.cipher, side.seq = _crypto().Tls13Cipher(self._params, side.secret), 0
            side.key_label, side.key_fits = _KEY_UPDATE, False
        return "update requested" if requested else "update not requested"

    def _mark_finished(self, side: _Side) -> None:
        if side.finished:
            return
        side.finished = True
        if self._established or not all(s.finished for s in self._sides.values()):
            return
        self._established = True
        if self._hello_ts is not None:
            self._handshake_seconds = round(max(0.0, self._ts - self._hello_ts), 6)
        self._event(
            side,
            HandshakeComplete,
            version=version_name(self._version) if self._version is not None else None,
            cipher=cipher_name(self._sh.cipher_suite) if self._sh else None,
            seconds=self._handshake_seconds,
        )
