"""``ScanBase.feed_fast``: the scanner's feed for chunks cut anywhere, in C and in Python.

Every stream here is fed chunk by chunk to three scanners: one as the middleware runs it (the
kernel's ``feed_fast`` first), one whose ``feed_fast`` is the Python twin's, and one with the
kernel turned off (``fast = False``: every chunk takes the general path, the reference). After
each chunk all three must say the same: the boundary, the events and content events the chunk
completed, critical, and the unfinished event's bytes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streamboost._stream import _kernel, _table
from streamboost._stream._kernel import PyScanBase
from streamboost._stream._scanner import EventScanner

NAMES = frozenset({b"done", b"error"})
METADATA = frozenset({b"ping", b"metadata"})
EVENTS = (
    b'data: {"token":" a"}\n\n',
    b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"delta":{"content":"x"},'
    b'"finish_reason":null}]}\n\n',
    b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"delta":{},'
    b'"finish_reason":"stop"}]}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"y"}}\n\n',
    b"event: ping\ndata: {}\n\n",
    b": comment\n\n",
    b"data: [DONE]\n\n",
    b'data: {"type":"error"}\n\n',
    b'data: {"usage":{"total_tokens":3}}\n\n',
    b"data: one\ndata: two\n\n",
    b"\n",
    b"data: cr\r\n\r\n",
    b"data: x\r\r",
    b"  \n\n",
    b'data: {"token":" b"}\r\n\r\n',
    b"event: ping\r\ndata: {}\r\n\r\n",
)
LINES = (
    b'{"token":" a"}\n',
    b'{"type":"done"}\n',
    b'{"usage":{"output_tokens":2}}\n',
    b"\n",
    b"  \n",
    b'{"text":"b"}\r\n',
)


def _state(scan: EventScanner) -> tuple[object, ...]:
    partial = b"".join(scan.partial) if scan.partial is not None else None
    return scan.events, scan.content, scan.critical, scan.pending, partial


def _cut(stream: bytes, cuts: list[int]) -> Iterator[tuple[bytes, int]]:
    """The stream's chunks at `cuts` bytes each, with where each ends in the stream."""
    at = 0
    for cut in cuts:
        chunk = stream[at : at + cut]
        at += cut
        if not chunk:
            return
        yield chunk, at


def _scanner(fmt: int, critical: bool, content: bool) -> EventScanner:
    names = frozenset({b"content_block_delta"}) if content else None
    return EventScanner(fmt, critical=NAMES if critical else None, metadata=METADATA, content=names)


@settings(max_examples=500, deadline=None)
@given(
    sse=st.booleans(),
    events=st.data(),
    cuts=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=12),
    critical=st.booleans(),
    content=st.booleans(),
)
def test_feed_fast_finds_what_the_general_path_finds(
    sse: bool, events: st.DataObject, cuts: list[int], critical: bool, content: bool
) -> None:
    pool = EVENTS if sse else LINES
    stream = b"".join(events.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=12)))
    fmt = _table.FORMAT_SSE if sse else _table.FORMAT_LINES
    kernel, twin, reference = (_scanner(fmt, critical, content) for _ in range(3))
    reference.fast = False
    for chunk, _ in _cut(stream, cuts):
        expected = reference.feed(chunk)
        assert kernel.feed(chunk) == expected
        end = PyScanBase.feed_fast(twin, chunk)
        assert end in (-1, expected)
        if end < 0:
            assert twin.feed(chunk) == expected
        assert _state(kernel) == _state(twin) == _state(reference), chunk


@pytest.mark.parametrize("native", [True, False], ids=["c", "python"])
def test_feed_fast_leaves_what_it_is_not_sure_of(native: bool) -> None:
    if native and not _kernel.NATIVE:
        pytest.skip("streamboost._speedups is not built (or STREAMBOOST_NO_EXTENSIONS is set)")
    feed_fast = _kernel.ScanBase.feed_fast if native else PyScanBase.feed_fast
    scan = _scanner(_table.FORMAT_SSE, critical=True, content=False)
    token = b'data: {"token":" a"}\n\n'
    assert feed_fast(scan, token[:9]) == 0  # no boundary yet: it waits
    assert (scan.pending, scan.partial) == (9, [token[:9]])
    assert feed_fast(scan, token[9:] + token[:5]) == len(token) - 9  # one ends, one starts
    assert (scan.events, scan.content, scan.pending) == (1, 1, 5)
    before = _state(scan)
    for chunk in (b"data: [DONE]\n\n", b"x\r\n\r\n", b'x": {"type":"error"}\n\n'):
        assert feed_fast(scan, token[5:] + chunk) == -1  # critical, a CR: the general path
        assert _state(scan) == before
    scan.fast = False
    assert feed_fast(scan, token[5:]) == -1


# Events no scanner here refuses (none critical, no usage) and none blank.
_PLAIN = (EVENTS[0], EVENTS[1], EVENTS[3], EVENTS[4], EVENTS[5], EVENTS[9])


@settings(max_examples=300, deadline=None)
@example(events=[EVENTS[0]] * 2, cuts=[23, 1, 21, 3], critical=False)  # LF CR, then LF alone
@given(
    events=st.lists(st.sampled_from(_PLAIN), min_size=1, max_size=12),
    cuts=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=12),
    critical=st.booleans(),
)
def test_a_stream_of_crlf_lines_cut_anywhere_is_the_kernels(
    events: list[bytes], cuts: list[int], critical: bool
) -> None:
    """Every line ending CRLF (sse-starlette's, Gemini's), the stream cut anywhere: the C
    kernel finds what the general path finds and takes every chunk but one that ends in a CR
    after an LF (which may end a blank line) and those up to the end of the next event (whose
    first LF may be that CRLF's rest): the general path decides those; none is critical."""
    stream = b"".join(events).replace(b"\n", b"\r\n")
    kernel, reference = (_scanner(_table.FORMAT_SSE, critical, False) for _ in range(2))
    reference.fast = False
    after_cr = False
    for chunk, at in _cut(stream, cuts):
        expected = reference.feed(chunk)
        end = kernel.feed_fast(chunk) if _kernel.NATIVE else -1
        if end < 0:
            assert kernel.feed(chunk) == expected
        else:
            assert end == expected
        assert _state(kernel) == _state(reference), chunk
        ends_blank = stream[at - 2 : at] == b"\n\r"  # LF CR: a blank line, or a CRLF's start
        if _kernel.NATIVE and not ends_blank and not after_cr:
            assert end >= 0, chunk
        # After an LF CR end the general path keeps the LF that follows as the next event's
        # start: that event, to the chunk that ends it, is the general path's too.
        after_cr = ends_blank or (after_cr and expected == 0)
