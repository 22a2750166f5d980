"""Throughput of the message pipeline on the synthetic generator's messages.

Builds messages with ``make_message`` of ../shared/tools/gen_mail_pcap.py (the generator the
analyzer benchmark uses: ~50 KB multipart/mixed with a base64 attachment), checks a few against
the stdlib, then reports MB/s of MessageSummarizer fed whole and in 1460-byte TCP-sized chunks,
next to the stdlib ``email`` parser on the same messages.

    python bench/bench_mime.py [--messages 400] [--msg-bytes 50000] [--seed 1]
"""

from __future__ import annotations

import argparse
import email
import email.policy
import hashlib
import importlib.util
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailtrace.mime import MessageSummarizer, summarize  # noqa: E402


def shared_dir() -> Path:
    return Path(os.environ.get("MAILTRACE_SHARED", ROOT.parent / "shared"))


def load_generator() -> ModuleType:
    path = shared_dir() / "tools" / "gen_mail_pcap.py"
    spec = importlib.util.spec_from_file_location("gen_mail_pcap", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"generator not found: {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_messages(count: int, mean: int, seed: int) -> list[bytes]:
    gen = load_generator()
    rng = random.Random(seed)
    out = []
    for i in range(count):
        size = max(600, int(mean * rng.uniform(0.5, 1.5)))
        msg, _, _ = gen.make_message(rng, size, 1_700_000_000.0 + i, i + 1, "10.0.0.1", "mx1.example.com")
        out.append(msg)
    return out


def check(messages: list[bytes]) -> None:
    """The summary's attachment hashes must equal the stdlib's decoding."""
    for raw in messages[:20]:
        ref = email.message_from_bytes(raw, policy=email.policy.default)
        want = [
            hashlib.sha256(p.get_payload(decode=True)).hexdigest()
            for p in ref.walk()
            if not p.is_multipart() and (p.get_filename() or p.get_content_disposition() == "attachment")
        ]
        got = [a.sha256 for a in summarize(raw).attachments]
        if got != want:
            raise SystemExit(f"attachment hashes differ from the stdlib: {got} != {want}")


def run_whole(messages: list[bytes]) -> None:
    for raw in messages:
        s = MessageSummarizer()
        s.feed(raw)
        s.close()


def run_chunked(messages: list[bytes]) -> None:
    for raw in messages:
        s = MessageSummarizer()
        for i in range(0, len(raw), 1460):
            s.feed(raw[i : i + 1460])
        s.close()


def run_stdlib(policy: email.policy.Policy) -> Callable[[list[bytes]], None]:
    def run(messages: list[bytes]) -> None:
        for raw in messages:
            msg = email.message_from_bytes(raw, policy=policy)
            for part in msg.walk():
                if not part.is_multipart():
                    hashlib.sha256(part.get_payload(decode=True) or b"").hexdigest()

    return run


def measure(fn: Callable[[list[bytes]], None], messages: list[bytes], repeat: int) -> float:
    total = sum(map(len, messages))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(messages)
        best = min(best, time.perf_counter() - t0)
    return total / best / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--msg-bytes", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-stdlib", action="store_true", help="skip the (slow) stdlib comparison")
    a = ap.parse_args()
    messages = make_messages(a.messages, a.msg_bytes, a.seed)
    check(messages)
    total = sum(map(len, messages))
    print(f"{len(messages)} messages, {total / 1e6:.1f} MB, mean {total / len(messages) / 1e3:.1f} KB")
    print(f"MessageSummarizer, whole message    {measure(run_whole, messages, a.repeat):7.1f} MB/s")
    print(f"MessageSummarizer, 1460-byte feeds  {measure(run_chunked, messages, a.repeat):7.1f} MB/s")
    if not a.no_stdlib:
        for name, pol in (("compat32", email.policy.compat32), ("default", email.policy.default)):
            print(f"stdlib email ({name}) + decode    {measure(run_stdlib(pol), messages, 1):7.1f} MB/s")


if __name__ == "__main__":
    main()
