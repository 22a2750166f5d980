"""Handshake metadata without keys, checked against Zeek's logs and tshark 4.0.

Zeek's ssl.log/x509.log are read from the corpus at test time. tshark's values were recorded
once as constants (commands in the comments) so the tests do not need tshark.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from mt_tls_streams import Conn, Item, run, tls_connections

from mailtrace.tls import HandshakeComplete, TlsAlert, TlsAnomaly, TlsSession, tls_info_to_json

ZEEK_VERSIONS = {"TLSv10": "TLS 1.0", "TLSv11": "TLS 1.1", "TLSv12": "TLS 1.2", "TLSv13": "TLS 1.3"}

CORPUS_TLS = {
    # capture → the Zeek btest baseline folder with its ssl.log / x509.log (None: tshark only)
    "zeek/tls-imap-starttls/imap-starttls.pcap": "scripts.base.protocols.imap.starttls",
    "zeek/tls-pop3-starttls/pop3-starttls.pcap": "scripts.base.protocols.pop3.starttls",
    "zeek/tls-smtp-starttls/smtp-starttls.pcap": "scripts.base.protocols.smtp.starttls",
    "zeek/tls-telesec/telesec.pcap": "scripts.base.files.x509.1999",
}


def zeek_log(path: Path) -> list[dict[str, str]]:
    fields: list[str] = []
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            rows.append(dict(zip(fields, line.split("\t"), strict=True)))
    return rows


def sessions(path: Path) -> list[tuple[Conn, list[Item]]]:
    found = tls_connections(path)
    assert found, f"no TLS connection found in {path}"
    return found


def observe(items: list[Item]) -> tuple[TlsSession, list[object]]:
    session = TlsSession()
    return session, run(session, items).events


def iso(epoch: str) -> str:
    return dt.datetime.fromtimestamp(float(epoch), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("capture", sorted(CORPUS_TLS))
def test_corpus_matches_zeek(shared: Path, capture: str) -> None:
    folder = shared / "corpus" / Path(capture).parent
    baseline = next(folder.glob(f"expectations/**/{CORPUS_TLS[capture]}"))
    [(conn, items)] = sessions(shared / "corpus" / capture)
    session, events = observe(items)
    info = session.info
    ssl_log = baseline / "ssl.log"
    if ssl_log.exists():
        [zeek] = zeek_log(ssl_log)
        assert (conn.client[1], conn.server[1]) == (int(zeek["id.orig_p"]), int(zeek["id.resp_p"]))
        assert info.version == ZEEK_VERSIONS[zeek["version"]]
        assert info.cipher == zeek["cipher"]
        assert info.sni == (None if zeek["server_name"] == "-" else zeek["server_name"])
        assert info.resumed is (zeek["resumed"] == "T")
        assert info.established is (zeek["established"] == "T")
        fps = zeek["cert_chain_fps"].split(",")
        assert [c.sha256 for c in info.certificates if c.sent_by == "server"] == fps
        if "subject" in zeek:
            assert info.certificates[0].subject == zeek["subject"]
            assert info.certificates[0].issuer == zeek["issuer"]
    x509 = zeek_log(baseline / "x509.log")
    assert len(info.certificates) == len(x509)
    for mine, theirs in zip(info.certificates, x509, strict=True):
        assert mine.sha256 == theirs["fingerprint"]
        assert mine.serial == theirs["certificate.serial"]
        assert mine.subject == theirs["certificate.subject"]
        assert mine.issuer == theirs["certificate.issuer"]
        assert mine.not_before == iso(theirs["certificate.not_valid_before"])
        assert mine.not_after == iso(theirs["certificate.not_valid_after"])
        dns = [] if theirs["san.dns"] == "-" else theirs["san.dns"].split(",")
        assert list(mine.san) == dns
    assert not [e for e in events if isinstance(e, TlsAnomaly)]
    assert len([e for e in events if isinstance(e, HandshakeComplete)]) == 1


# tshark -r F -Y 'tls.handshake.type==1||tls.handshake.type==2' -T fields -e tcp.stream
#   -e tls.handshake.extensions_server_name -e tls.handshake.extensions.supported_version
#   -e tls.handshake.ciphersuite -e tls.handshake.cipher_suites_length   (offered = length / 2)
# tshark -r F -Y 'tls.record.content_type==21' -T fields -e frame.number -e tcp.srcport
# tshark -r F -Y 'tcp.len>0 && !tcp.analysis.retransmission' ... summed per direction from the
#   first frame carrying a TLS record (bytes).
TSHARK = {
    # (capture, server port, client port): expected TlsInfo JSON subset
    ("corpus/zeek/tls-imap-starttls/imap-starttls.pcap", 143, 49640): {
        "client_versions": ["TLS 1.2"],
        "cipher_suites_offered": 91,
        "bytes": {"client": 514, "server": 5123},
        "alert_frames": [27, 30],
    },
    ("corpus/zeek/tls-pop3-starttls/pop3-starttls.pcap", 110, 54775): {
        "client_versions": ["TLS 1.2"],
        "cipher_suites_offered": 80,
        "bytes": {"client": 845, "server": 2452},
        "alert_frames": [30],
    },
    ("corpus/zeek/tls-smtp-starttls/smtp-starttls.pcap", 25, 54170): {
        "client_versions": ["TLS 1.2"],
        "cipher_suites_offered": 80,
        "bytes": {"client": 788, "server": 4580},
        "alert_frames": [34],
    },
    ("corpus/zeek/tls-telesec/telesec.pcap", 993, 65343): {
        "client_versions": ["TLS 1.2"],
        "cipher_suites_offered": 86,
        "bytes": {"client": 465, "server": 5335},
        "alert_frames": [18, 20],
    },
    ("corpus/ndpi/imaps/imaps.pcap", 993, 50506): {
        "sni": "mail.ntop.org",
        "client_versions": ["TLS 1.2"],
        "cipher_suites_offered": 33,
        "version": "TLS 1.2",
        "cipher": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "established": True,
        "subjects": ["CN=mail.ntop.org", "CN=Let's Encrypt Authority X3,O=Let's Encrypt,C=US"],
        "san0": ["mail.ntop.org"],
        "serials": ["039F28C9B687D9355A0A1037A52C3F45A0FB", "0A0141420000015385736A0B85ECA708"],
        "bytes": {"client": 548, "server": 3308},
        "alert_frames": [],
    },
    ("corpus/ndpi/imaps/imaps.pcap", 993, 51529): {
        # Capture ends inside the server's Certificate record (frame 28 is the last).
        "sni": "imap.asia.secureserver.net",
        "client_versions": ["TLS 1.3", "TLS 1.2", "TLS 1.1", "TLS 1.0"],
        "cipher_suites_offered": 27,
        "version": "TLS 1.2",
        "cipher": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "established": False,
        "subjects": [],
        "bytes": {"client": 517, "server": 2776},
        "alert_frames": [],
        "anomalies": ["truncated-record"],
    },
    ("corpus/ndpi/pops/pops.pcapng", 995, 55077): {
        "sni": "pop.secureserver.net",
        "client_versions": ["TLS 1.2"],
        "cipher_suites_offered": 28,
        "version": "TLS 1.2",
        "cipher": "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
        "established": False,
        "subjects": [],
        "bytes": {"client": 184, "server": 2520},
        "alert_frames": [],
        "anomalies": ["truncated-record"],
    },
    ("corpus/ndpi/smtps/smtps.pcapng", 465, 37682): {
        # The server answers the ClientHello with a plaintext SMTP greeting (tshark: "TCP").
        "sni": None,
        "client_versions": ["TLS 1.2"],
        "cipher_suites_offered": 86,
        "version": None,
        "cipher": None,
        "established": False,
        "bytes": {"client": 517, "server": 179},
        "alert_frames": [],
        "anomalies": ["not-tls"],
    },
    ("corpus/suricata-verify/smtp-tls-protodetect/input.pcap", 465, 62353): {
        "sni": None,
        "client_versions": ["TLS 1.2"],
        "cipher_suites_offered": 28,
        "version": None,
        "cipher": None,
        "established": False,
        "bytes": {"client": 176, "server": 30},
        "alert_frames": [],
        "anomalies": ["not-tls"],
    },
}
LAB_CERT = {
    "subject": "O=mailtrace capture lab,CN=mx.remote.example",
    "issuer": "O=mailtrace capture lab,CN=mx.remote.example",
    "san": ["mx.remote.example"],
    "serial": "5F02BD38F1180D5151CCBA84FB5DEEA1C3B7996A",
}
LAB = {
    "sni": "mx.remote.example",
    "client_versions": ["TLS 1.3", "TLS 1.2", "TLS 1.1", "TLS 1.0"],
    "cipher_suites_offered": 31,
    "version": "TLS 1.3",
    "cipher": "TLS_AES_256_GCM_SHA384",
    "established": True,
    "subjects": [],  # TLS 1.3 without keys: the Certificate is encrypted
}
for key, nbytes in {
    ("samples-src/captures/smtp-starttls.pcap", 587, 34198): (1232, 2219, 37),
    ("samples-src/captures/smtp-starttls.pcap", 25, 40025): (1110, 2129, 72),
    ("samples-src/captures/tls-implicit.pcap", 465, 53934): (1227, 2291, 37),
    ("samples-src/captures/tls-implicit.pcap", 993, 42424): (821, 3503, 73),
    ("samples-src/captures/tls-implicit.pcap", 995, 38706): (729, 2252, 107),
    ("samples-src/captures/tls-implicit.pcap", 143, 35524): (732, 2778, 145),
    ("samples-src/captures/tls-implicit.pcap", 110, 43366): (729, 2156, 185),
}.items():
    # The last server record of each is close_notify (tshark with the key log); without keys
    # TLS 1.3 shows it as application data (type 23), so no alert is expected here.
    TSHARK[key] = {**LAB, "bytes": {"client": nbytes[0], "server": nbytes[1]}, "alert_frames": []}
TSHARK[("samples-src/captures/smtp-starttls.pcap", 25, 40025)]["sni"] = None  # swaks sends no SNI


@pytest.mark.parametrize("key", sorted(TSHARK), ids=lambda k: f"{Path(k[0]).stem}-{k[1]}-{k[2]}")
def test_metadata_matches_tshark(shared: Path, key: tuple[str, int, int]) -> None:
    capture, server_port, client_port = key
    expected = TSHARK[key]
    found = {(c.server[1], c.client[1]): items for c, items in sessions(shared / capture)}
    session, events = observe(found[(server_port, client_port)])
    got = tls_info_to_json(session.info)
    for field in (
        "sni",
        "client_versions",
        "cipher_suites_offered",
        "version",
        "cipher",
        "established",
        "bytes",
    ):
        if field in expected:
            assert got[field] == expected[field], field
    if "subjects" in expected:
        assert [c["subject"] for c in got["certificates"]] == expected["subjects"]
    if "san0" in expected:
        assert got["certificates"][0]["san"] == expected["san0"]
    if "serials" in expected:
        assert [c["serial"] for c in got["certificates"]] == expected["serials"]
    assert [a["frame"] for a in got["alerts"]] == expected["alert_frames"]
    assert [e.frame for e in events if isinstance(e, TlsAlert)] == expected["alert_frames"]
    assert got["anomalies"] == expected.get("anomalies", [])
    if got["established"]:
        assert got["handshake_seconds"] is not None and 0 < got["handshake_seconds"] < 5
    assert got["first_frame"] is not None
    assert got["decrypted"] is False


def test_lab_certificate_is_read_once_decrypted(shared: Path) -> None:
    """TLS 1.3 hides the certificate; with the key log it is there (tshark agrees, see LAB_CERT)."""
    from mailtrace.tls import KeyLog

    cap = shared / "samples-src/captures/tls-implicit.pcap"
    keylog = KeyLog.from_file(cap.with_suffix(".keylog"))
    for _conn, items in sessions(cap):
        session = TlsSession(keylog)
        run(session, items)
        [cert] = tls_info_to_json(session.info)["certificates"]
        assert {k: cert[k] for k in LAB_CERT} == LAB_CERT
        assert cert["sent_by"] == "server"
