"""Adding a protocol cannot be half done: every dissector module is registered, tested and documented."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import mailtrace.protocols as protocols
from mailtrace.config import DEFAULT_PORTS, parse_port_rule
from mailtrace.filters import PROTOCOLS
from mailtrace.protocols import BY_NAME, REGISTRY
from mailtrace.protocols.base import DissectorLimits
from mailtrace.render.captions import PROTOCOL_CAPTIONS

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ("sniff", "feed", "finish", "bulk", "bulk_left", "tls_started", "record")


def dissector_classes() -> list[type]:
    """Every class in mailtrace/protocols/*.py that has the Dissector attributes."""
    found = []
    for info in pkgutil.iter_modules(protocols.__path__):
        module = importlib.import_module(f"mailtrace.protocols.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and isinstance(getattr(cls, "name", None), str) \
                    and hasattr(cls, "default_ports") and hasattr(cls, "feed"):
                found.append(cls)
    return found


def test_every_dissector_module_is_registered() -> None:
    classes = dissector_classes()
    assert {c.__name__ for c in classes} >= {"Smtp", "Pop3", "Imap"}
    assert set(classes) == set(REGISTRY)


@pytest.mark.parametrize("cls", REGISTRY, ids=lambda c: c.name)
def test_dissector_keeps_the_contract(cls: type) -> None:
    for attribute in CONTRACT:
        assert hasattr(cls, attribute), f"{cls.__name__} lacks {attribute} (see protocols/base.py Dissector)"
    dissector = cls(DissectorLimits())
    assert dissector.feed.__code__.co_argcount == 2
    assert dissector.finish() == [] and dissector.bulk is None
    assert isinstance(dissector.record(), dict)
    assert cls.sniff(b"", b"") <= 0, "no bytes cannot be a verdict"


@pytest.mark.parametrize("cls", REGISTRY, ids=lambda c: c.name)
def test_dissector_is_wired_everywhere(cls: type) -> None:
    """Ports, --port names, --protocol choices and captions all come from the registry."""
    assert BY_NAME[cls.name] is cls and cls.name in PROTOCOLS
    for port in cls.default_ports:
        assert DEFAULT_PORTS[port].protocol == cls.name and not DEFAULT_PORTS[port].implicit_tls
    for port in cls.tls_ports:
        assert DEFAULT_PORTS[port].protocol == cls.name and DEFAULT_PORTS[port].implicit_tls
    assert parse_port_rule(f"4000={cls.name}")[1].protocol == cls.name
    assert parse_port_rule(f"4000={cls.name}s")[1].implicit_tls
    assert cls.name in PROTOCOL_CAPTIONS, "captions for its commands: mailtrace/render/captions.py"


@pytest.mark.parametrize("cls", REGISTRY, ids=lambda c: c.name)
def test_dissector_has_tests_and_a_documentation_page(cls: type) -> None:
    tests = [ROOT / "tests" / f"test_{cls.name}.py", ROOT / "tests" / "protocols" / f"test_{cls.name}.py"]
    assert any(p.is_file() and "def test_" in p.read_text(encoding="utf-8") for p in tests)
    page = ROOT / "docs" / "protocols" / f"{cls.name}.md"
    assert page.is_file() and "## Anomalies" in page.read_text(encoding="utf-8")
