"""mailtrace: an analyzer for SMTP, POP3 and IMAP captures.

The layers, each in its own module, with data flowing one way:

* ``capture``   — packet sources (pcap/pcapng files, live interfaces) yielding raw frames;
                  ``capture.decode`` turns a frame into a TCP segment or skips it cheaply.
* ``tcp``       — flow table and per-direction reassembly: segments to ordered stream items
                  (bytes, explicit gaps, end of stream).
* ``detect``    — decides which protocol a connection speaks (port, first bytes, proxy preamble).
* ``protocols`` — sans-I/O dissectors, one module per protocol: stream items to typed events.
* ``mime``      — the message pipeline: message bytes to a header/MIME summary.
* ``session``   — folds packets and events into a Session: phases, rows, transactions.
* ``render``    — terminal (rich), HTML (jinja2) and JSON views of sessions; they never re-parse.
"""

__version__ = "0.1.0"
