"""The event-boundary scanner and the event classifiers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.coalesce_apps import openai

from streamboost._config import DEFAULT_CRITICAL_EVENTS
from streamboost._middleware import DEFAULT_METADATA_EVENTS
from streamboost._stream._classify import is_critical, is_sse_content
from streamboost._stream._format import stream_format
from streamboost._stream._scanner import EventScanner
from streamboost._stream._table import (
    CONTENT,
    CONTENT_MASK,
    EVENTS_SHIFT,
    FORMAT_CHUNKS,
    FORMAT_LINES,
    FORMAT_SSE,
    GENERAL,
)

NAMES = frozenset(n.encode() for n in DEFAULT_CRITICAL_EVENTS)
METADATA = frozenset(n.encode() for n in DEFAULT_METADATA_EVENTS)


def scanner(fmt: int = FORMAT_SSE) -> EventScanner:
    return EventScanner(fmt, critical=NAMES, metadata=METADATA)


@pytest.mark.parametrize(
    ("content_type", "fmt"),
    [
        ("text/event-stream", FORMAT_SSE),
        ("text/event-stream; charset=utf-8", FORMAT_SSE),
        ("Application/X-NDJSON", FORMAT_LINES),
        ("application/jsonl", FORMAT_LINES),
        ("text/plain; charset=utf-8", FORMAT_CHUNKS),
        ("application/json", 0),
        ("text/html", 0),
    ],
)
def test_stream_format(content_type: str, fmt: int) -> None:
    assert stream_format(content_type) == fmt


def test_whole_events_are_complete() -> None:
    scan = scanner()
    chunk = b"data: a\n\ndata: b\n\n"
    assert scan.feed(chunk) == len(chunk)
    assert (scan.events, scan.content, scan.pending) == (2, 2, 0)


def test_partial_event_waits_for_its_end_across_chunks() -> None:
    scan = scanner()
    assert scan.feed(b"data: a\n\ndata: b") == len(b"data: a\n\n")
    assert (scan.events, scan.pending) == (1, len(b"data: b"))
    assert scan.feed(b"\n") == 0  # one newline does not end an event
    assert scan.events == 0
    # The blank line straddles the chunk boundary: the event ends after this chunk's byte.
    assert scan.feed(b"\ndata: c") == 1
    assert (scan.events, scan.content) == (1, 1)
    assert scan.feed(b"\r\n\r\n") == 4
    assert scan.events == 1


@pytest.mark.parametrize(
    "pieces",
    [[b"data: a\r\n", b"\r\n"], [b"data: a\r", b"\n\r\n"], [b"data: a\r", b"\r"]],
)
def test_crlf_and_cr_boundaries_across_chunks(pieces: list[bytes]) -> None:
    scan = scanner()
    assert scan.feed(pieces[0]) == 0
    assert scan.feed(pieces[1]) == len(pieces[1])
    assert scan.events == 1


def test_a_cr_that_ends_a_chunk_ends_its_blank_line() -> None:
    # The SSE spec's CR line ending: the event is whole at the CR, not held for an LF that
    # may never come; an LF that does come is the rest of that CRLF, not an event.
    scan = scanner()
    assert scan.feed(b"data: a\r\n\r") == len(b"data: a\r\n\r")
    assert (scan.events, scan.content) == (1, 1)
    assert scan.feed(b"\n") == 0
    assert scan.feed(b"data: b\n\n") == len(b"data: b\n\n")
    assert (scan.events, scan.content) == (1, 1)
    scan.end()
    assert scan.events == 0


@pytest.mark.parametrize(
    ("stream", "events"),
    [
        (b"data: a\n\ndata: b\n\n", 2),
        (b"data: a\r\n\r\ndata: b\r\n\r\n", 2),
        (b"data: a\r\rdata: b\r\r", 2),
        (b"data: a\rdata: a2\r\revent: x\rdata: b\r\r", 2),
        (b"data: a\n\r\ndata: b\r\r\ndata: c\r\n\n", 3),
    ],
)
@pytest.mark.parametrize("split", [1, 2, 3, 5, 1000])
def test_every_line_ending_finds_every_event(stream: bytes, events: int, split: int) -> None:
    scan = scanner()
    found = 0
    for at in range(0, len(stream), split):
        scan.feed(stream[at : at + split])
        found += scan.events
    assert found == events  # each found when its blank line came, none held to the end
    scan.end()
    assert scan.events == 0


def test_ndjson_lines() -> None:
    scan = scanner(FORMAT_LINES)
    assert scan.feed(b'{"a": 1}\n{"b"') == len(b'{"a": 1}\n')
    assert scan.feed(b": 2}\n\n") == len(b": 2}\n\n")
    # NDJSON readers skip blank lines: not an event, so it does not inflate events_total.
    assert (scan.events, scan.content) == (1, 1)


def test_text_plain_chunks_are_events() -> None:
    scan = scanner(FORMAT_CHUNKS)
    assert scan.feed(b"Hello") == 5
    assert (scan.events, scan.content) == (1, 1)


def test_unterminated_last_event_is_classified_at_the_end() -> None:
    scan = scanner()
    scan.feed(b"data: tail")
    scan.end()
    assert (scan.events, scan.content, scan.pending) == (1, 1, 0)


@pytest.mark.parametrize(
    ("event", "content"),
    [
        (b"data: hello\n\n", True),
        (b": keep-alive\n\n", False),
        (b"event: ping\ndata: {}\n\n", False),
        (b'event: metadata\ndata: {"model": "m"}\n\n', False),
        (b"event: token\ndata: hi\n\n", True),
        (b"data: [DONE]\n\n", False),
        (b"id: 3\n\n", False),
        (b"data:\n\n", False),
        (openai(role="assistant", content=""), False),
        (openai("Hi"), True),
        (openai(finish="stop"), False),
        (
            b'data: {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": '
            b'{"tool_calls": [{"index": 0, "function": {"name": "f"}}]}}]}\n\n',
            True,
        ),
        (
            b'data: {"object":"chat.completion.chunk","choices":[],"usage":{"total_tokens":3}}\n\n',
            False,
        ),
    ],
)
def test_content_classification(event: bytes, content: bool) -> None:
    assert is_sse_content(event, METADATA) is content


@pytest.mark.parametrize(
    ("segment", "critical"),
    [
        (b"event: done\ndata: {}\n\n", True),
        (b"event: error\ndata: boom\n\n", True),
        (b"event:start\ndata: x\n\n", True),
        (b"event: token\ndata: done\n\n", False),
        (b'data: {"type": "complete"}\n\n', True),
        (b'{"type":"error","message":"x"}\n', True),
        (b'data: {"type": "delta"}\n\n', False),
        (b"data: [DONE]\n\n", True),
        (openai("x"), False),
        (openai(finish="stop"), True),
        (b'data: {"choices":[],"usage":{"total_tokens":3}}\n\n', True),
        (b'data: {"choices":[],"usage": null}\n\n', False),
    ],
)
def test_critical_detection(segment: bytes, critical: bool) -> None:
    assert is_critical(segment, NAMES) is critical


def test_scanner_reports_critical_per_chunk() -> None:
    scan = scanner()
    scan.feed(b"data: a\n\nevent: done\ndata: {}\n\n")
    assert scan.critical
    scan.feed(b"data: b\n\n")
    assert not scan.critical


@pytest.mark.parametrize("end", [b"\n", b"\r\n"])
def test_one_line_events_with_either_line_ending(end: bytes) -> None:
    scan = scanner()
    for data, critical, content in [
        (b"data: hello", False, 1),
        (b"data: [DONE]", True, 0),
        (b'data: {"type": "done"}', True, 1),
        (b'data: {"type": "delta"}', False, 1),
        (openai("x").removesuffix(b"\n\n"), False, 1),
        (openai(finish="stop").removesuffix(b"\n\n"), True, 0),
        (b"data: x" + end + b"data: y", False, 1),  # two data lines, one event
        (b": ping", False, 0),
    ]:
        chunk = data + end + end
        assert scan.feed(chunk) == len(chunk)
        assert (scan.events, scan.critical, scan.content) == (1, critical, content), chunk


def test_without_critical_detection_every_event_is_classified_in_full() -> None:
    # Nothing coalesced: the kernel's classify() answers for one-event chunks; each answer
    # must equal what the coalescing scanner's general path finds.
    prefix = b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,'
    events = [
        prefix + b'"delta":{"role":"assistant","content":""},"finish_reason":null}]}',
        prefix + b'"delta":{"content":"Hel"},"finish_reason":null}]}',
        prefix + b'"delta":{"content":"lo"},"finish_reason":null}]}',
        prefix + b'"delta":{"content":""},"finish_reason":null}]}',
        prefix + b'"delta":{"content":"say \\"hi\\""},"finish_reason":null}]}',
        prefix + b'"delta":{"content":"x"},"finish_reason":"stop"}]}',
        prefix + b'"delta":{},"finish_reason":"stop"}]}',
        b'data: {"id":"c2","object":"chat.completion.chunk","choices":[{"index":0,'
        b'"delta":{"content":"other prefix"},"finish_reason":null}]}',
        prefix + b'"delta":{"content":"z"},"finish_reason":null}]}\ndata: more',
        b"data: {}",
        b": ping",
        b"data: [DONE]",
        b'data: {"token": "hi"}',
        b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"a"}}',
        b"event: metadata\ndata: {}",
    ]
    scan = EventScanner(FORMAT_SSE, critical=None, metadata=METADATA)
    reference = scanner()
    known = 0
    for event in events:
        chunk = event + b"\n\n"
        kind = scan.classify(chunk)
        assert scan.feed(chunk) == reference.feed(chunk) == len(chunk)
        assert (scan.events, scan.content) == (reference.events, reference.content), chunk
        if kind != GENERAL:  # then the middleware skips feed(): it must mean one event
            known += 1
            assert (reference.events, reference.content) == (1, int(kind == CONTENT)), chunk
        assert not scan.critical
    assert known == len(events)  # every one is a whole event, and none is asked if critical


ODD_PIECES = (
    *(b"x", b" ", b'"', b"\\", b"\n", b"\r", b":", b",", b"}", b"]", b"[DONE]", b"null"),
    *(b'"finish_reason"', b'"usage"', b'"type"', b'"done"', b"stop", b"data:", b"event:"),
)


@pytest.mark.parametrize(
    "chunk",
    [
        openai(finish="stop"),
        openai("x", finish="stop"),
        openai("x", finish="length"),
        openai("x") + openai("y", finish="stop"),  # two events, one critical
        openai("x") + openai("y")[:-1],  # two events, the second unterminated
        openai("x") + b"\n\n" + openai("y"),  # a blank line between them
        openai("x")[:-1],  # unterminated
        openai("x").replace(b"\n\n", b"\r\n\n"),  # mixed line endings: the general path
        openai("x").replace(b"\n\n", b"\r\r"),  # CR line endings: the general path
        openai("x", finish="stop").replace(b"\n\n", b"\r\n\r\n"),  # CRLF, critical
        b"data: [DONE]\n\n",
        b'data: {"type":"done"}\n\n',
        b'data: {"type" : "error", "x": 1}\n\n',
        b"event: done\ndata: {}\n\n",
        b"event:  error \ndata: {}\n\n",
        b'data: {"usage": {"total_tokens": 3}}\n\n',
    ],
)
def test_classify_never_hides_a_critical_or_odd_event(chunk: bytes) -> None:
    scan = scanner()
    assert scan.classify(chunk) == GENERAL
    scan.feed(openai("half")[:20])  # an unfinished event: nothing is known until it ends
    assert scan.classify(openai("x")) == GENERAL


@settings(max_examples=400, deadline=None)
@given(
    head=st.sampled_from(
        [b"data: ", b"data:", b"event: message\ndata: ", b"event: ping\ndata: ", b": ", b"id: 1\n"]
    ),
    middle=st.lists(st.sampled_from(ODD_PIECES), max_size=12),
    end=st.sampled_from([b"\n\n", b"\r\n\r\n", b"\n", b"\n\n\n", b"\n\ndata: x\n\n"]),
    critical=st.booleans(),
)
def test_classify_is_exactly_what_feed_finds(
    head: bytes, middle: list[bytes], end: bytes, critical: bool
) -> None:
    chunk = head + b"".join(middle) + end
    scan = EventScanner(FORMAT_SSE, critical=NAMES if critical else None, metadata=METADATA)
    reference = EventScanner(FORMAT_SSE, critical=NAMES if critical else None, metadata=METADATA)
    kind = scan.classify(chunk)
    complete = reference.feed(chunk)
    if kind != GENERAL:  # the middleware then skips feed(): it must mean whole events
        assert (complete, reference.events) == (len(chunk), kind >> EVENTS_SHIFT)
        assert reference.content == kind & CONTENT_MASK
        assert not reference.critical
