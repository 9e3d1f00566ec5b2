"""``ScanBase.classify``'s C walk against the Python rules, on chunks as apps send them.

The C twin reads a chunk in one walk of 16-byte blocks (the last one overlapping the one
before it), so these bodies have every length from a few bytes to several blocks, with the
keys and line ends at every offset; and it looks names up in compiled copies of the
scanner's frozensets (a table shared by every stream), so sets of every kind go through it:
``str`` elements, a mutable ``set``, long names, and more sets than the table holds.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamboost._stream import NATIVE, _kernel, _table
from streamboost._stream._kernel import PyScanBase
from streamboost._stream._presets import PRESETS

needs_native = pytest.mark.skipif(
    not NATIVE, reason="streamboost._speedups is not built (or STREAMBOOST_NO_EXTENSIONS is set)"
)

FORMATS = (_table.FORMAT_SSE, _table.FORMAT_LINES, _table.FORMAT_CHUNKS)


def _scan(kind: type[Any], fmt: int, preset: str, critical: bool) -> Any:
    rules = PRESETS[preset]
    scan = kind()
    scan.fmt, scan.fast, scan.pending = fmt, True, 0
    scan.metadata = rules.metadata
    scan.critical_names = rules.critical if critical else None
    scan.content_names = rules.content
    scan.openai_chat = rules.openai_chat
    return scan


def _alike(body: bytes, fmt: int, preset: str, critical: bool) -> int:
    native = _scan(_kernel.ScanBase, fmt, preset, critical)
    python = _scan(PyScanBase, fmt, preset, critical)
    kind: int = native.classify(body)
    assert kind == python.classify(body), (body, fmt, preset, critical)
    return kind


# Chunks as the presets' apps send them; {} is the text, {fr} the finish reason, {extra} a
# field that may make the chunk critical or not content.
_TEMPLATES = (
    b'data: {{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"m","choices":[{{"index":0,"delta":{{"content":"{}"}},"finish_reason":{fr}}}]'
    b"{extra}}}\n\n",
    b'event: content_block_delta\ndata: {{"type":"content_block_delta","index":0,'
    b'"delta":{{"type":"text_delta","text":"{}"}}{extra}}}\n\n',
    b'event: response.output_text.delta\ndata: {{"type":"response.output_text.delta",'
    b'"delta":"{}"{extra}}}\n\n',
    b'data: {{"type":"text-delta","id":"0","delta":"{}"{extra}}}\n\n',
    b'data: {{"token": "{}"{extra}}}\n\n',
    b'{{"token":"{}"{extra}}}\n',
    b"{}",
)
_EXTRAS = (
    b"",
    b',"usage":null',
    b',"usage":{"prompt_tokens":1}',
    b',"tool_calls":[{"index":0}]',
    b',"type":"error"',
    b',"type":"message_stop"',
    b',"x":"[DONE]"',
    b',"content":""',
)
_FINISH = (b"null", b'"stop"', b'""')
_TEXT = st.text(
    alphabet=st.sampled_from(list(' abcDE"\\\n\r[]{}:,tfuc')), min_size=0, max_size=90
).map(lambda text: text.encode())


@needs_native
@settings(max_examples=500, deadline=None)
@given(
    template=st.sampled_from(_TEMPLATES),
    text=_TEXT,
    finish=st.sampled_from(_FINISH),
    extra=st.sampled_from(_EXTRAS),
    pad=st.integers(0, 40),
    fmt=st.sampled_from(FORMATS),
    preset=st.sampled_from(["auto", "openai", "anthropic", "openai-responses", "vercel-ai"]),
    critical=st.booleans(),
)
def test_app_chunks_of_every_length_are_classified_alike(
    template: bytes,
    text: bytes,
    finish: bytes,
    extra: bytes,
    pad: int,
    fmt: int,
    preset: str,
    critical: bool,
) -> None:
    # Spaces after "data:" move every key and line end by `pad` bytes (JSON keeps its
    # meaning; an event name line keeps its place).
    body = template.replace(b"{fr}", finish).replace(b"{extra}", extra)
    body = body.replace(b"{{", b"{").replace(b"}}", b"}").replace(b"{}", text, 1)
    body = body.replace(b"data: ", b"data: " + b" " * pad, 1)
    if not body:
        body = b"x"
    _alike(body, fmt, preset, critical)


def test_a_plain_openai_chunk_is_content_and_its_finish_is_critical() -> None:
    """The walk answers the cases the bench streams, on both paths (not only alike)."""
    chunk = (
        b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,'
        b'"model":"sim","choices":[{"index":0,"delta":{"content":" tok7"},'
        b'"finish_reason":null}]}\n\n'
    )
    for kind in (PyScanBase, _kernel.ScanBase):
        scan = _scan(kind, _table.FORMAT_SSE, "auto", True)
        assert scan.classify(chunk) == _table.CONTENT
        assert scan.classify(chunk.replace(b"null", b'"stop"')) == _table.GENERAL
        assert scan.classify(chunk.replace(b'" tok7"', b'""')) == _table.OTHER
        assert scan.classify(chunk[:-1] + b"\r\n") == _table.GENERAL
        anthropic = (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"text_delta","text":" tok7"}}\n\n'
        )
        assert scan.classify(anthropic) == _table.CONTENT
        assert scan.classify(anthropic.replace(b"content_block_delta", b"ping")) == _table.OTHER
        stop = anthropic.replace(b"content_block_delta", b"message_stop")
        assert scan.classify(stop) == _table.GENERAL


class _Name(bytes):
    """A bytes subclass: a set holding one is looked up by PySet_Contains, as Python does."""


@needs_native
@pytest.mark.parametrize(
    "names",
    [
        frozenset({b"ping", "ping", b"metadata"}),
        {b"ping", b"metadata"},
        frozenset({_Name(b"ping")}),
        frozenset({b"p" * 63, b"p" * 64, b"p" * 65, b"p" * 200}),
        frozenset(),
    ],
)
@pytest.mark.parametrize("name", [b"ping", b"pin", b"pingg", b"p" * 64, b"p" * 66, b"p" * 200])
def test_event_names_are_looked_up_alike_in_every_kind_of_set(
    names: frozenset[Any] | set[Any], name: bytes
) -> None:
    body = b"event: " + name + b'\ndata: {"token": "x"}\n\n'
    for critical in (False, True):
        scans = [kind() for kind in (_kernel.ScanBase, PyScanBase)]
        for scan in scans:
            scan.fmt, scan.fast, scan.pending = _table.FORMAT_SSE, True, 0
            scan.metadata = names
            scan.critical_names = frozenset(names) if critical else None
            scan.content_names = None
            scan.openai_chat = True
        native, python = scans
        assert native.classify(body) == python.classify(body), (names, name, critical)


@needs_native
def test_more_sets_than_the_c_table_holds_still_answer_alike() -> None:
    """Twenty scanners with sets of their own, taken in turn twice: the shared table of
    compiled sets replaces its entries, and no answer changes."""
    scans = []
    for i in range(20):
        pair = []
        for kind in (_kernel.ScanBase, PyScanBase):
            scan = kind()
            scan.fmt, scan.fast, scan.pending = _table.FORMAT_SSE, True, 0
            scan.metadata = frozenset({b"meta%d" % i})
            scan.critical_names = frozenset({b"stop%d" % i})
            scan.content_names = frozenset({b"delta%d" % i, b"delta"})
            scan.openai_chat = False
            pair.append(scan)
        scans.append(pair)
    for _ in range(2):
        for i, (native, python) in enumerate(scans):
            for name in (
                b"meta%d" % i,
                b"stop%d" % i,
                b"delta%d" % i,
                b"delta",
                b"meta%d" % (i + 1),
            ):
                body = b"event: " + name + b"\ndata: {}\n\n"
                typed = b'data: {"type":"' + name + b'"}\n\n'
                for chunk in (body, typed):
                    assert native.classify(chunk) == python.classify(chunk), (i, chunk)


@needs_native
@pytest.mark.parametrize(
    "value",
    [b"error", b"err\x00or", b"\x00", b"error\\", b"error\\x", b"", b"message_stop\x00"],
)
@pytest.mark.parametrize("closed", [True, False])
def test_type_values_with_nul_and_backslash_bytes_are_read_alike(
    value: bytes, closed: bool
) -> None:
    """The C reader of a "type" value stops at a quote, a backslash or the bytes' end (the NUL
    CPython keeps there), and passes a NUL inside the value, as the regex does."""
    tail = b'"}\n\n' if closed else b""
    for template in (b'data: {"type":"%s%s', b'data: {"x":1,"type" : "%s%s'):
        body = template % (value, tail)
        for fmt in FORMATS:
            for preset in ("auto", "vercel-ai", "anthropic"):
                for critical in (False, True):
                    _alike(body or b"x", fmt, preset, critical)
                    _alike(body + b'{"type":"error"}\n\n', fmt, preset, critical)
