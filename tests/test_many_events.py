"""Chunks that are not one whole event: several events in one chunk, events cut anywhere.

A relay's reads of an upstream stream (``async for chunk in response.aiter_bytes()``) and an
app that batches its own events send such chunks. The kernel classifies a chunk of several
whole events itself (each as a chunk of its own), and the scanner's general path hands the
whole events of a cut stream to the same classify. These tests check that every such stream
is counted as the general path alone counts it (an ``is_metadata`` test that says no to
everything sends every event down that path), and that its bytes reach the client as sent.
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from tests.coalesce_apps import Records, openai, run_app, sse

from streamboost import StreamBoost
from streamboost._stream import _kernel, _table
from streamboost._stream._kernel import PyScanBase
from streamboost._stream._scanner import EventScanner

FIELDS = ("chunks_in", "events", "content_events", "bytes_out", "outcome", "writes")
ANTHROPIC = (
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"%d"}}'
    b"\n\n"
)


def _events(shape: str) -> tuple[list[bytes], bytes]:
    """One stream's events, in order, and its content type."""
    if shape == "openai":
        body = [openai(role="assistant")] + [openai(f" t{i}") for i in range(30)]
        return [*body, openai(finish="stop"), b"data: [DONE]\n\n"], b"text/event-stream"
    if shape == "token":
        return [sse(f'{{"token": " t{i}"}}') for i in range(30)], b"text/event-stream"
    if shape == "anthropic":
        start = b'event: message_start\ndata: {"type":"message_start"}\n\n'
        stop = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
        return [start, *(ANTHROPIC % i for i in range(30)), stop], b"text/event-stream"
    if shape == "mixed":  # pings and comments between the tokens
        events = []
        for i in range(30):
            events.append(sse(f'{{"token": "{i}"}}'))
            if i % 4 == 0:
                events.append(b": ping\n\n" if i % 8 else b"event: ping\ndata: {}\n\n")
        return events, b"text/event-stream"
    lines = [b'{"token":" t%d"}\n' % i for i in range(30)]
    return [*lines, b'{"done":true,"type":"done"}\n'], b"application/x-ndjson"


def _chunks(events: list[bytes], cut: str) -> list[bytes]:
    whole = b"".join(events)
    if cut == "pairs":
        return [b"".join(events[i : i + 2]) for i in range(0, len(events), 2)]
    if cut == "fives":
        return [b"".join(events[i : i + 5]) for i in range(0, len(events), 5)]
    if cut == "bytes":  # a relay's reads: cut every 300 bytes, events split anywhere
        return [whole[i : i + 300] for i in range(0, len(whole), 300)]
    return [whole[i : i + 7] for i in range(0, len(whole), 7)]  # "tiny" reads


def _app(chunks: list[bytes], content_type: bytes) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-type", content_type)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


async def _counted(app: Any, coalesce: bool, general: bool) -> tuple[list[Any], list[bytes]]:
    records = Records()
    boosted = StreamBoost(
        app,
        coalesce=coalesce,
        registry=CollectorRegistry(),
        otel=False,
        observers=[records],
        # the general path alone: an app's own test sends every event through it
        is_metadata=(lambda event: False) if general else None,
    )
    recorded = await run_app(boosted)
    record = records.ended[0]
    return [getattr(record, field) for field in FIELDS], recorded.bodies


@pytest.mark.parametrize("coalesce", [False, True], ids=["direct", "coalesced"])
@pytest.mark.parametrize("cut", ["pairs", "fives", "bytes", "tiny"])
@pytest.mark.parametrize("shape", ["openai", "token", "anthropic", "mixed", "ndjson"])
async def test_counted_as_the_general_path_counts(shape: str, cut: str, coalesce: bool) -> None:
    events, content_type = _events(shape)
    chunks = _chunks(events, cut)
    app = _app(chunks, content_type)
    fast, writes = await _counted(app, coalesce, general=False)
    reference, reference_writes = await _counted(app, coalesce, general=True)
    assert b"".join(writes) == b"".join(events)
    assert writes == reference_writes  # the same batches, write by write
    assert fast == reference
    assert fast[:2] == [len(chunks) + 1, len(events)]  # every chunk, and the end; every event


@pytest.mark.parametrize("native", [True, False], ids=["c", "python"])
def test_a_chunk_of_whole_events_is_the_kernels(native: bool) -> None:
    if native and not _kernel.NATIVE:
        pytest.skip("streamboost._speedups is not built (or STREAMBOOST_NO_EXTENSIONS is set)")
    base = _kernel.ScanBase if native else PyScanBase
    scan = EventScanner(_table.FORMAT_SSE, critical=frozenset({b"done"}), metadata=frozenset())
    shift, mask = _table.EVENTS_SHIFT, _table.CONTENT_MASK

    def classify(chunk: bytes) -> int:
        return int(base.classify(scan, chunk))

    three = openai(role="assistant") + openai("a") + openai("b")
    assert (classify(three) >> shift, classify(three) & mask) == (3, 2)
    assert classify(three + b": ping\n\n") == 4 << shift | 2
    assert classify(openai("a") + openai(finish="stop")) == _table.GENERAL  # critical: flush
    assert classify(openai("a") + openai("b")[:-1]) == _table.GENERAL  # ends inside one
    assert classify(openai("a") + b"\n\n" + openai("b")) == _table.GENERAL  # a blank event
    crlf = openai("a").replace(b"\n\n", b"\r\n\r\n")
    assert classify(crlf * 2) == 2 << shift | 2  # CRLF lines: the LF version's answer
    assert classify(crlf + openai("b")) == _table.GENERAL  # mixed line endings
    assert classify(crlf.replace(b"\r\n\r\n", b"\r\n\n")) == _table.GENERAL
    assert classify(crlf.replace(b"\r\n\r\n", b"\r\r")) == _table.GENERAL  # CR only
    usage = b'data: {"usage": {"total_tokens": 3}}\n\n'
    assert classify(openai("a") + usage) == _table.GENERAL  # the scanner reads usage
