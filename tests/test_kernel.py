"""The fast-path kernel's C twin (``_stream._speedups``) against its Python one.

The same stream sent through the C ``Sender`` and through ``PySender`` must leave the same
record and put the same writes on the wire; ``classify``, ``add`` and the record's changes give
the same answers on the same inputs; the C types declare exactly the fields of ``_table``.
CI sets ``STREAMBOOST_REQUIRE_NATIVE=1`` (the extension must have been built) and runs the
whole suite a second time with ``STREAMBOOST_NO_EXTENSIONS=1``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.coalesce_apps import driven_stream, openai

from streamboost import CoalesceConfig, StreamBoost
from streamboost._stream import NATIVE, HTTPStream, _kernel, _table
from streamboost._stream._kernel import PyBatchBase, PyRecordBase, PyScanBase, PySender
from streamboost._stream._scanner import EventScanner
from streamboost._stream._senders import Coalesced, Direct

needs_native = pytest.mark.skipif(
    not NATIVE, reason="streamboost._speedups is not built (or STREAMBOOST_NO_EXTENSIONS is set)"
)


def test_the_c_path_is_built_where_ci_requires_it() -> None:
    if os.environ.get("STREAMBOOST_REQUIRE_NATIVE") == "1" and not os.environ.get(
        "STREAMBOOST_NO_EXTENSIONS"
    ):
        assert NATIVE, "streamboost._speedups did not build: see `uv sync -v` for the compiler"


def test_the_kernel_is_the_c_one_when_built() -> None:
    if NATIVE:
        assert _kernel.Sender is not PySender
        assert _kernel.RecordBase.__module__ == "streamboost._stream._speedups"
    else:
        assert (_kernel.Sender, _kernel.RecordBase) == (PySender, PyRecordBase)


@needs_native
@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("RecordBase", _table.RECORD_FIELDS),
        ("ScanBase", _table.SCAN_FIELDS),
        ("BatchBase", _table.BATCH_FIELDS),
        ("Sender", _table.SENDER_FIELDS),
    ],
)
def test_the_c_types_declare_the_tables_fields(name: str, fields: tuple[str, ...]) -> None:
    native = getattr(_kernel, name)
    declared = {
        key for key, value in vars(native).items() if type(value).__name__ == "member_descriptor"
    }
    assert declared == set(fields)
    arrays = _table.RECORD_ARRAYS if name == "RecordBase" else ()
    python = getattr(_kernel, "Py" + name)
    assert set(python.__slots__) - {"_chunk"} == set(fields) | set(arrays)
    for array in arrays:  # C: a read-only property over a fixed array
        assert type(vars(native)[array]).__name__ == "getset_descriptor"


async def _app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not called: the test drives HTTPStream itself")


SCOPE = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/event-stream; charset=utf-8")],
}
FIELDS = (
    "chunks_in",
    "events",
    "content_events",
    "writes",
    "bytes_out",
    "first_byte_at",
    "first_token_at",
    "last_token_at",
    "last_body_at",
    "outcome",
)


Kernel = Callable[[Callable[[Any], Awaitable[None]]], Any]


async def _run(
    chunks: list[bytes | memoryview], coalesce: bool, kernel: Kernel
) -> tuple[tuple[object, ...], list[bytes]]:
    config = CoalesceConfig(window=5.0, max_events=4, max_bytes=600, max_buffer_bytes=900)
    stream, writes = driven_stream(config if coalesce else False, kernel)
    send: Callable[[dict[str, Any]], Awaitable[None]] = stream.kernel.send
    await send(dict(START))
    for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await asyncio.sleep(0)  # let a flusher the chunk woke write, as between real tokens
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    coalescer = stream._coalesced
    if coalescer is not None:
        coalescer.close()
    record = stream.record
    return tuple(getattr(record, name) for name in FIELDS), writes


def _content(text: str) -> bytes:
    return openai(text)


CHUNK = st.one_of(
    st.text(alphabet='ab "\\\n\u00e9', min_size=0, max_size=6).map(_content),
    st.sampled_from(
        [
            openai(role="assistant"),
            openai(finish="stop"),
            b"data: [DONE]\n\n",
            b": ping\n\n",
            b"event: metadata\ndata: {}\n\n",
            openai("x") + openai("y"),
            openai("split")[:20],
            openai("split")[20:],
            b'data: {"type":"error"}\n\n',
            b'data: {"token": "t"}\n\n',
            b'event: content_block_delta\ndata: {"type":"content_block_delta"}\n\n',
            b"event: ping\ndata: {}\n\n",
            b'data: {"usage": {"total_tokens": 3}}\n\n',
            openai("crlf").replace(b"\n\n", b"\r\n\r\n"),
            openai("cr").replace(b"\n\n", b"\r\r"),
            openai("cr")[:-1] + b"\r",  # LF then CR: a blank line
            b"\n",  # the LF that completes a CRLF the chunk before ended with its CR
            openai("two\rlines").replace(b"\\r", b"\r"),  # a raw CR inside: not JSON
            openai("two\revents").replace(b"\\r", b"\r\r"),
        ]
    ),
    st.tuples(
        st.text(alphabet="ab", min_size=1, max_size=4),
        st.sampled_from([b"\n\n", b"\r\n\r\n", b"\r\r", b"\n\r\n", b"\r\r\n"]),
    ).map(lambda t: _content(t[0])[:-2] + t[1]),
    st.text(alphabet="abc", min_size=1, max_size=3).map(lambda t: memoryview(_content(t))),
)


@needs_native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(CHUNK, max_size=30), coalesce=st.booleans())
def test_the_c_path_leaves_what_the_python_path_leaves(
    chunks: list[bytes | memoryview], coalesce: bool
) -> None:
    async def both() -> None:
        native = await _run(chunks, coalesce, _kernel.Sender)
        python = await _run(chunks, coalesce, PySender)
        assert native == python

    asyncio.run(both())


@needs_native
@pytest.mark.parametrize("coalesce", [True, False])
@pytest.mark.parametrize(
    "shape",
    [
        _content,
        lambda text: b'data: {"token": "%s"}\n\n' % text.encode(),
        lambda text: (
            b"event: content_block_delta\ndata: "
            b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"%s"}}\n\n'
            % text.encode()
        ),
    ],
    ids=["openai", "token", "anthropic"],
)
def test_a_long_token_stream_takes_the_c_path_and_keeps_every_byte(
    coalesce: bool, shape: Callable[[str], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = [shape(f"token{i} ") for i in range(300)]
    calls = 0

    def counting(general: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def counted(self: Any, message: dict[str, Any]) -> Any:
            nonlocal calls
            calls += 1
            return general(self, message)

        return counted

    monkeypatch.setattr(Coalesced, "general", counting(Coalesced.general))
    monkeypatch.setattr(Direct, "general", counting(Direct.general))

    async def both() -> None:
        nonlocal calls
        native = await _run(list(tokens), coalesce, _kernel.Sender)
        native_calls, calls = calls, 0
        python = await _run(list(tokens), coalesce, PySender)
        assert native == python
        assert b"".join(native[1]) == b"".join(tokens)
        assert native[0][FIELDS.index("content_events")] == 300
        # The last body message, and with coalescing a chunk after each write (a batch must
        # be waiting for the kernel to join it), go to Python; the rest is the kernel's.
        assert native_calls < 302 // 3, native_calls

    asyncio.run(both())


async def _backpressure(kernel: Kernel) -> tuple[int, tuple[object, ...], int]:
    """Chunks the app got through before its send waited on a full buffer; record; bytes."""
    boost = StreamBoost(
        _app,
        coalesce=CoalesceConfig(window=5.0, max_events=1000, max_bytes=2000, max_buffer_bytes=2000),
        metrics=False,
        otel=False,
    )
    gate = asyncio.Event()
    gate.set()
    written: list[bytes] = []

    async def server_send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            await gate.wait()
            written.append(bytes(message.get("body", b"")))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    stream = HTTPStream(boost.responses, dict(SCOPE), receive, server_send, kernel=kernel)
    send = stream.kernel.send
    progress = 0

    async def app() -> None:
        nonlocal progress
        await send(dict(START))
        for i in range(60):
            await send({"type": "http.response.body", "body": _content(f"t{i}"), "more_body": True})
            progress += 1
            if i == 1:
                gate.clear()  # the client stops reading after the first tokens
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    task = asyncio.create_task(app())
    for _ in range(20):
        await asyncio.sleep(0)
    stalled_at = progress
    gate.set()
    await asyncio.wait_for(task, 5)
    coalescer = stream._coalesced
    assert coalescer is not None
    coalescer.close()
    record = stream.record
    fields = tuple(getattr(record, name) for name in FIELDS if not name.endswith("_at"))
    return stalled_at, fields, len(b"".join(written))


@needs_native
def test_a_full_buffer_makes_the_apps_send_wait_on_the_c_path_too() -> None:
    async def both() -> None:
        native = await _backpressure(_kernel.Sender)
        python = await _backpressure(PySender)
        assert native == python
        stalled_at, _, size = native
        assert 2 < stalled_at < 60  # it waited for room, then finished
        assert size == sum(len(_content(f"t{i}")) for i in range(60))

    asyncio.run(both())


# A protocol preset's content events (``_presets``): by ``event:`` name or first JSON "type".
CONTENT_NAMES = frozenset({b"content_block_delta", b"text-delta", b"x"})


def _scan(
    kind: type[Any],
    fmt: int,
    critical: bool,
    fast: bool = True,
    content: bool = False,
    openai_chat: bool = True,
) -> Any:
    scan = kind()
    scan.fmt = fmt
    scan.fast = fast
    scan.pending = 0
    scan.metadata = frozenset({b"metadata", b"ping"})
    scan.critical_names = frozenset({b"done", b"error"}) if critical else None
    scan.content_names = CONTENT_NAMES if content else None
    scan.openai_chat = openai_chat
    return scan


PIECES = (
    *(b"data:", b"data: ", b"event: ", b"event:", b": ", b"id: 1", b"\n", b"\n\n", b"\r"),
    *(b"x", b" ", b'"', b"\\", b"{", b"}", b"[DONE]", b"null", b":", b'""', b"{}", b"[]"),
    *(b'"type"', b'"done"', b'"error"', b"ping", b"metadata", b"done", b"error"),
    *(b'"finish_reason"', b'"usage"', b'"content"', b'"tool_calls"', b'"chat.completion.chunk"'),
    *(b"content_block_delta", b'"text-delta"', b'"x"', b"event: x\n", b'"type":"x"'),
)


@needs_native
@settings(max_examples=600, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(PIECES), min_size=1, max_size=14),
    fmt=st.sampled_from([_table.FORMAT_SSE, _table.FORMAT_LINES, _table.FORMAT_CHUNKS]),
    critical=st.booleans(),
    fast=st.booleans(),
    pending=st.booleans(),
    content=st.booleans(),
    openai_chat=st.booleans(),
)
def test_classify_answers_alike_in_c_and_python(
    pieces: list[bytes],
    fmt: int,
    critical: bool,
    fast: bool,
    pending: bool,
    content: bool,
    openai_chat: bool,
) -> None:
    body = b"".join(pieces)
    native = _scan(_kernel.ScanBase, fmt, critical, fast, content, openai_chat)
    native.pending = int(pending)
    assert native.classify(body) == PyScanBase.classify(native, body)
    python = _scan(PyScanBase, fmt, critical, fast, content, openai_chat)
    python.pending = int(pending)
    assert python.classify(body) == native.classify(body)
    if pending or not fast:
        assert native.classify(body) == _table.GENERAL
    # Whatever the kernel answers, the scanner's general path finds the same.
    kind = native.classify(body)
    if kind != _table.GENERAL:
        reference = EventScanner(
            fmt,
            critical=native.critical_names,
            metadata=native.metadata,
            is_metadata=None,
            content=native.content_names,
            openai_chat=openai_chat,
        )
        assert reference.feed(body) == len(body)
        events, content = kind >> _table.EVENTS_SHIFT, kind & _table.CONTENT_MASK
        assert (reference.events, reference.content) == (events, content)
        assert not reference.critical
        assert not reference.critical


def _batch(kind: type[Any], max_events: int, max_bytes: int, max_buffer: int) -> Any:
    batch = kind()
    batch.ready = []
    batch.ready_bytes = batch.ready_events = batch.ready_content = 0
    batch.pending_bytes = batch.inflight = 0
    batch.max_events, batch.max_bytes, batch.max_buffer = max_events, max_bytes, max_buffer
    batch.wanted = False
    batch.error = None
    batch.loop = batch.loop_clock = batch.lag = batch.partial = None
    batch.eager = batch.write_now = batch.near = False
    batch.last_event = batch.last_write = float("-inf")
    batch.quiet_gap, batch.window = 0.025, 0.05
    batch.due = float("inf")
    return batch


@needs_native
@settings(max_examples=200, deadline=None)
@given(
    adds=st.lists(
        st.tuples(st.integers(1, 40), st.integers(0, 3), st.booleans(), st.booleans()),
        max_size=20,
    ),
    limits=st.tuples(st.integers(1, 6), st.integers(1, 120), st.integers(0, 200)),
    inflight=st.integers(0, 50),
)
def test_add_answers_alike_in_c_and_python(
    adds: list[tuple[int, int, bool, bool]], limits: tuple[int, int, int], inflight: int
) -> None:
    max_events, max_bytes, extra = limits
    native = _batch(_kernel.BatchBase, max_events, max_bytes, max_bytes + extra)
    python = _batch(PyBatchBase, max_events, max_bytes, max_bytes + extra)
    for batch in (native, python):
        batch.inflight = inflight
    for size, events, critical, wanted in adds:
        body = b"x" * size
        native.wanted = python.wanted = wanted
        assert native.add(body, size, events, 1, critical) == python.add(
            body, size, events, 1, critical
        )
        for field in _table.BATCH_FIELDS:
            assert getattr(native, field) == getattr(python, field), field


@needs_native
def test_the_records_changes_are_alike_in_c_and_python() -> None:
    records = [_kernel.RecordBase(), PyRecordBase()]
    for record in records:
        for field in _table.RECORD_FIELDS:
            if field not in ("app_at", "gap_at"):  # plain floats (C doubles), set below
                setattr(record, field, None if field.endswith("_at") else 0)
        record.app_at, record.gap_at = 0.0, float("-inf")
        record.took(2)
        record.sent(0, 1, 0, 1.0)
        record.sent(5, 1, 0, 2.0)
        record.wrote(7, 2, 3.0)
        record.sent(3, 1, 1, 4.0)
    native, python = records
    for field in _table.RECORD_FIELDS:
        assert getattr(native, field) == getattr(python, field), field
    assert (python.first_byte_at, python.first_token_at, python.last_token_at) == (2.0, 3.0, 4.0)


@needs_native
def test_the_gap_counters_are_alike_in_c_and_python() -> None:
    """Gaps between the app's content events: per bucket (bisect semantics: a gap equal to a
    bound is in that bound's bucket), several events in one message are 0 s apart, non-content
    messages only move ``app_at``; C and Python count alike."""
    bounds = _table.GAP_BOUNDS
    times = [2.0, 2.25, 2.375, 50.0, 50.0, 200.0]  # exact in binary: 0.25 is a bound
    records = [_kernel.RecordBase(), PyRecordBase()]
    for record in records:
        for field in _table.RECORD_FIELDS:
            if field not in ("app_at", "gap_at"):
                setattr(record, field, None if field.endswith("_at") else 0)
        record.app_at, record.gap_at = 0.0, float("-inf")
        record.gap_max = record.gap_sum = 0.0
        record.produced(0, 0.5)  # metadata first: no gap starts
        for i, at in enumerate(times):
            record.produced(3 if i == 3 else 1, at)
        record.sent(4, 1, 0, 210.0)
    native, python = records
    assert tuple(native.gap_counts) == tuple(python.gap_counts)
    for field in ("app_at", "gap_at", "gap_max", "gap_sum"):
        assert getattr(native, field) == getattr(python, field), field
    want = [0] * (len(bounds) + 1)
    quarter = bounds.index(0.25)
    want[quarter] = 2  # 0.25 s (the bound itself) and 0.125 s
    want[0] = 2 + 1  # two more events in one message, then 50.0 again
    want[bounds.index(60.0)] += 1  # 47.625 s: over 30 s, under 60
    want[-1] += 1  # 150 s: +Inf
    assert list(python.gap_counts) == want
    assert python.gap_max == 150.0 and python.app_at == 210.0
    assert python.gap_sum == 198.0
