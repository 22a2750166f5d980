"""Protocol dissectors: one module per protocol, one line each in REGISTRY.

``tests/test_registry.py`` fails when a module here is missing from REGISTRY, has no tests or no
documentation page — so adding a protocol cannot be half done.
"""

from __future__ import annotations

from mailtrace.protocols.base import Dissector
from mailtrace.protocols.imap import Imap
from mailtrace.protocols.pop3 import Pop3
from mailtrace.protocols.smtp import Smtp

DissectorClass = type[Smtp] | type[Pop3] | type[Imap]

REGISTRY: tuple[DissectorClass, ...] = (
    Smtp,
    Pop3,
    Imap,
)

BY_NAME: dict[str, DissectorClass] = {cls.name: cls for cls in REGISTRY}

__all__ = ["BY_NAME", "REGISTRY", "Dissector", "DissectorClass"]
