"""StreamBoost as an ASGI layer: the StreamRecord seam, outcomes, pass-through, opt-out."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route
from tests.coalesce_apps import SSE, Message, Recorded, Records, openai, run_app, sse, stream_app

from streamboost import CoalesceConfig, StreamBoost

START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", SSE)]}


class TickClock:
    """A clock that moves one second per reading, so every stamp is distinct and known."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


async def test_record_is_filled_for_a_stream() -> None:
    records = Records()
    clock = TickClock()
    steps = [
        (0.0, sse("{}", event="metadata")),
        (0.0, openai(role="assistant", content="")),
        (0.0, openai("Hello")),
        (0.0, openai(" world")),
        (0.0, openai("!")),
        (0.0, openai(finish="stop")),
        (0.0, b"data: [DONE]\n\n"),
    ]
    app = StreamBoost(
        stream_app(steps), coalesce=CoalesceConfig(window=30), observers=[records], clock=clock
    )
    seen_scope: list[dict[str, Any]] = []

    async def outer(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen_scope.append(scope)
        await app(scope, receive, send)

    recorded = await run_app(outer)
    assert records.started == records.ended and len(records.ended) == 1
    record = records.ended[0]
    assert record.scope is seen_scope[0]
    assert (record.status, record.streaming, record.outcome) == (200, True, "completed")
    assert record.chunks_in == len(steps) + 1
    assert record.events == len(steps)
    assert record.content_events == 3
    assert record.writes == len(recorded.bodies)
    assert record.bytes_out == len(recorded.body) == sum(len(c) for _, c in steps)
    # Clock readings: request 1, headers 2, then one per body message the app sends (the
    # inter-token gap counter, issue 16) and one per write (metadata, role, Hello, batch):
    # metadata sent 3, written 4; role 5, 6; Hello 7, written 8.
    assert (record.request_at, record.headers_at, record.first_byte_at) == (1.0, 2.0, 4.0)
    assert record.first_token_at == 8.0
    assert record.last_token_at == record.last_body_at == 14.0
    assert record.time_to_first_token() == 7.0


async def test_record_for_a_plain_response() -> None:
    records = Records()

    async def endpoint(request: Any) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = StreamBoost(Starlette(routes=[Route("/", endpoint)]), observers=[records])
    recorded = await run_app(app)
    (record,) = records.ended
    assert (record.status, record.streaming, record.outcome) == (200, False, "completed")
    assert (record.chunks_in, record.writes, record.events) == (1, 1, 0)
    assert record.bytes_out == len(recorded.body) == len(b'{"ok":true}')
    assert record.first_byte_at is not None and record.last_body_at is not None


async def test_stream_without_content_is_no_token() -> None:
    records = Records()
    app = StreamBoost(stream_app([(0.0, b": ping\n\n")]), observers=[records])
    await run_app(app)
    assert records.ended[0].outcome == "no_token"


async def test_app_error_is_counted_once() -> None:
    records = Records()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", SSE)]}
        )
        await send({"type": "http.response.body", "body": sse("a"), "more_body": True})
        await send({"type": "http.response.body", "body": sse("b"), "more_body": True})
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError, match="model crashed"):
        await run_app(StreamBoost(app, observers=[records]))
    assert len(records.started) == len(records.ended) == 1
    assert records.ended[0].outcome == "error"


async def test_app_error_before_the_response_is_a_500_without_start() -> None:
    records = Records()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await run_app(StreamBoost(app, observers=[records]))
    assert records.started == []
    (record,) = records.ended
    assert (record.status, record.outcome) == (500, "error")


async def test_app_returning_without_a_response_is_a_500_error() -> None:
    records = Records()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    await run_app(StreamBoost(app, observers=[records]))
    (record,) = records.ended
    assert (record.status, record.outcome, records.started) == (500, "error", [])


async def test_oserror_from_send_is_a_client_disconnect() -> None:
    records = Records()
    writes = 0

    async def send_gate(message: Message) -> None:
        nonlocal writes
        if message["type"] == "http.response.body":
            writes += 1
            if writes == 3:
                raise OSError("connection reset")

    steps = [(0.0, sse("a"))] + [(0.002, sse(f"t{i}")) for i in range(200)]
    app = StreamBoost(stream_app(steps), coalesce=CoalesceConfig(window=0.005), observers=[records])
    tasks_before = len(asyncio.all_tasks())
    with pytest.raises(OSError):
        await run_app(app, send_gate=send_gate)
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == tasks_before
    assert records.ended[0].outcome == "client_disconnected"


@pytest.mark.parametrize("spec", ["2.3", "2.4"])
async def test_oserror_from_send_without_coalescing_is_a_client_disconnect(spec: str) -> None:
    # Chunks go to the server's send without a coroutine of StreamBoost's around them, so the
    # failure is recognised from the traceback; with spec 2.4 Starlette turns the OSError
    # into its own ClientDisconnect.
    records = Records()
    writes = 0

    async def send_gate(message: Message) -> None:
        nonlocal writes
        if message["type"] == "http.response.body":
            writes += 1
            if writes == 3:
                raise OSError("connection reset")

    async def tokens() -> Any:
        for i in range(10):
            yield sse(f"t{i}")

    async def endpoint(request: Any) -> StreamingResponse:
        return StreamingResponse(tokens(), media_type="text/event-stream")

    app = StreamBoost(Starlette(routes=[Route("/", endpoint)]), coalesce=False, observers=[records])
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [],
        "asgi": {"version": "3.0", "spec_version": spec},
    }
    with pytest.raises(Exception) as raised:
        await run_app(app, scope=scope, send_gate=send_gate)
    assert isinstance(raised.value, OSError) or type(raised.value).__name__ == "ClientDisconnect"
    (record,) = records.ended
    assert (record.outcome, record.chunks_in, record.writes) == ("client_disconnected", 3, 3)


async def test_the_apps_own_oserror_without_coalescing_is_an_error() -> None:
    records = Records()

    async def tokens() -> Any:
        yield sse("t0")
        yield sse("t1")
        raise OSError("the model backend went away")

    async def endpoint(request: Any) -> StreamingResponse:
        return StreamingResponse(tokens(), media_type="text/event-stream")

    app = StreamBoost(Starlette(routes=[Route("/", endpoint)]), coalesce=False, observers=[records])
    with pytest.raises(OSError, match="backend"):
        await run_app(app)
    (record,) = records.ended
    assert (record.outcome, record.content_events) == ("error", 2)


async def test_http_disconnect_stops_the_stream_and_leaves_no_task() -> None:
    records = Records()
    disconnect = asyncio.Event()
    produced = 0

    async def numbers() -> Any:
        nonlocal produced
        for i in range(100_000):
            produced += 1
            if i == 20:
                disconnect.set()
            yield sse(f"token {i}")
            await asyncio.sleep(0.001)

    async def endpoint(request: Any) -> StreamingResponse:
        return StreamingResponse(numbers(), media_type="text/event-stream")

    app = StreamBoost(
        Starlette(routes=[Route("/", endpoint)]),
        coalesce=CoalesceConfig(window=0.01),
        observers=[records],
    )
    tasks_before = len(asyncio.all_tasks())
    await asyncio.wait_for(run_app(app, disconnect=disconnect), 10)
    await asyncio.sleep(0)
    assert produced < 1000  # the app stopped (starlette saw the disconnect)
    assert len(asyncio.all_tasks()) == tasks_before
    (record,) = records.ended
    assert record.outcome == "client_disconnected"


async def test_disconnect_after_the_body_is_not_a_client_disconnect() -> None:
    records = Records()
    disconnect = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # the request
        await send(START)
        for i in range(3):
            await send({"type": "http.response.body", "body": sse(f"e{i}"), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        disconnect.set()
        # Servers answer http.disconnect once the response is complete (as starlette's
        # disconnect listener sees it): that is not a client that left early.
        assert (await receive())["type"] == "http.disconnect"

    await run_app(StreamBoost(app, observers=[records]), disconnect=disconnect)
    assert records.ended[0].outcome == "completed"


@pytest.mark.parametrize(
    ("content_type", "headers"),
    [
        (b"application/json", []),
        (b"text/html", []),
        (SSE, [(b"content-length", b"1000")]),
        (SSE, [(b"content-encoding", b"gzip")]),
    ],
)
async def test_other_responses_pass_through_untouched(
    content_type: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    steps = [(0.0, sse(f"e{i}")) for i in range(30)]
    inner = stream_app(steps, content_type=content_type, headers=headers)
    bare = await run_app(inner)
    boosted = await run_app(StreamBoost(inner, coalesce=CoalesceConfig(window=30)))
    assert boosted.messages == bare.messages


async def test_single_message_response_passes_through() -> None:
    async def endpoint(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello")

    inner = Starlette(routes=[Route("/", endpoint)])
    assert (await run_app(StreamBoost(inner))).messages == (await run_app(inner)).messages


async def test_opt_out_header_is_removed_and_the_response_is_not_coalesced() -> None:
    records = Records()
    steps = [(0.0, sse(f"e{i}")) for i in range(30)]
    inner = stream_app(steps, headers=[(b"X-StreamBoost-Opt-Out", b"1")])
    recorded = await run_app(
        StreamBoost(inner, coalesce=CoalesceConfig(window=30), observers=[records])
    )
    start = recorded.messages[0]
    assert start["headers"] == [(b"content-type", SSE)]
    assert recorded.bodies == [c for _, c in steps] + [b""]
    assert records.ended[0].events == 30  # still timed and counted


async def test_coalesce_false_forwards_every_chunk_but_still_times() -> None:
    records = Records()
    steps = [(0.0, sse(f"e{i}")) for i in range(10)]
    recorded = await run_app(StreamBoost(stream_app(steps), coalesce=False, observers=[records]))
    assert recorded.bodies == [c for _, c in steps] + [b""]
    assert (records.ended[0].writes, records.ended[0].content_events) == (11, 10)


@pytest.mark.parametrize(
    "extra",
    [
        {"type": "http.response.trailers", "headers": [], "more_trailers": False},
        {"type": "http.response.pathsend", "path": "/dev/null"},
        {"type": "http.response.zerocopysend", "file": 0},
        {"type": "some.future.message", "x": 1},
    ],
)
async def test_other_messages_flush_buffered_bytes_first(extra: Message) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", SSE)]}
        )
        for i in range(5):
            await send({"type": "http.response.body", "body": sse(f"e{i}"), "more_body": True})
        await send(extra)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    recorded = await run_app(StreamBoost(app, coalesce=CoalesceConfig(window=30)))
    types = [m["type"] for m in recorded.messages]
    assert types.index(extra["type"]) == 3  # start, first event, the batch of four, extra
    assert recorded.messages[3] is extra
    assert recorded.body == b"".join(sse(f"e{i}") for i in range(5))


async def test_websocket_passes_through_untouched_without_metrics_or_batching() -> None:
    calls: list[tuple[dict[str, Any], Any, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        calls.append((scope, receive, send))

    async def receive() -> Message:
        return {}

    async def send(message: Message) -> None:
        return None

    # Metrics on, WebSocket connections are counted (tests/test_websocket_metrics.py).
    boosted = StreamBoost(app, metrics=False, otel=False)
    scope = {"type": "websocket", "path": "/ws"}
    await boosted(scope, receive, send)
    assert calls[-1] == (scope, receive, send)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"coalesce": "yes"}, "coalesce='yes' must be True, False or a CoalesceConfig"),
        ({"metadata_events": "ping"}, "metadata_events='ping' must be a collection"),
        ({"opt_out_header": ""}, "opt_out_header='' must be a header name"),
    ],
)
def test_bad_arguments_name_the_value_and_the_fix(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        StreamBoost(stream_app([]), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 0}, r"window=0 must be > 0 seconds \(default 0.05\)"),
        ({"max_events": 0}, "max_events=0 must be >= 1"),
        ({"max_bytes": 0}, "max_bytes=0 must be >= 1"),
        ({"max_bytes": 10, "max_buffer_bytes": 5}, "max_buffer_bytes=5 must be >= max_bytes=10"),
        ({"send_timeout": -1.0}, "send_timeout=-1.0 must be > 0 seconds or None"),
        ({"critical_events": "done"}, "critical_events='done' must be a collection"),
    ],
)
def test_config_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CoalesceConfig(**kwargs)


def test_config_defaults() -> None:
    config = CoalesceConfig()
    assert (config.window, config.max_events, config.max_bytes) == (0.05, 16, 65536)
    assert config.max_buffer_bytes == 1024 * 1024
    assert config.critical_events == {"start", "complete", "done", "error"}
    assert (config.send_timeout, config.merge_openai, config.websocket) == (None, False, False)


async def test_text_plain_and_ndjson_streams_are_coalesced() -> None:
    for content_type, steps in (
        (b"text/plain; charset=utf-8", [(0.0, f"word{i} ".encode()) for i in range(40)]),
        (b"application/x-ndjson", [(0.0, b'{"i": %d}\n' % i) for i in range(40)]),
    ):
        records = Records()
        recorded = await run_app(
            StreamBoost(
                stream_app(steps, content_type=content_type),
                coalesce=CoalesceConfig(window=30),
                observers=[records],
            )
        )
        assert recorded.body == b"".join(c for _, c in steps)
        assert len(recorded.bodies) < 10
        assert records.ended[0].content_events == 40


async def test_a_failing_observer_never_breaks_the_response(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def stream_started(self, record: Any) -> None:
            raise ValueError("exporter bug")

        def stream_ended(self, record: Any) -> None:
            raise ValueError("exporter bug")

    records = Records()
    steps = [(0.0, sse("a")), (0.0, sse("b"))]
    recorded = await run_app(StreamBoost(stream_app(steps), observers=[Broken(), records]))
    assert recorded.body == sse("a") + sse("b")
    assert len(records.ended) == 1  # the observers after the broken one still run
    assert "exporter bug" in caplog.text


async def test_background_work_after_the_body_is_not_stream_time() -> None:
    records = Records()
    clock = TickClock()

    async def background() -> None:
        clock.now += 100.0  # the app's work after its last body message

    app = StreamBoost(
        stream_app([(0.0, sse("a"))], after=background), observers=[records], clock=clock
    )
    await run_app(app)
    (record,) = records.ended
    assert record.last_body_at is not None and record.last_body_at < 100.0
    assert record.stream_duration() == record.last_body_at - record.request_at


async def test_after_http_disconnect_sends_go_to_the_server_as_without_streamboost() -> None:
    records = Records()
    disconnect = asyncio.Event()
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # the request

        async def listen() -> None:
            seen.append((await receive())["type"])

        listener = asyncio.create_task(listen())
        await send(START)
        for i in range(10):
            if i == 5:
                disconnect.set()
                await listener
            await send({"type": "http.response.body", "body": sse(f"e{i}"), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    app_ = StreamBoost(app, coalesce=CoalesceConfig(window=30), observers=[records])
    recorded = await run_app(app_, disconnect=disconnect)  # no exception from StreamBoost
    assert seen == ["http.disconnect"]
    # The buffered events were dropped; later ones reached the server, which decides.
    assert recorded.bodies[0] == sse("e0")
    assert recorded.bodies[-6:] == [sse(f"e{i}") for i in range(5, 10)] + [b""]
    (record,) = records.ended
    assert record.outcome == "client_disconnected"
    assert record.writes == 1


async def test_events_buffered_when_the_app_fails_still_reach_the_client() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        for i in range(5):
            await send({"type": "http.response.body", "body": sse(f"e{i}"), "more_body": True})
        raise RuntimeError("model crashed")

    recorded = Recorded()
    with pytest.raises(RuntimeError):
        await run_app(StreamBoost(app, coalesce=CoalesceConfig(window=30)), recorded=recorded)
    assert recorded.body == b"".join(sse(f"e{i}") for i in range(5))


async def test_events_buffered_when_the_app_returns_without_ending_its_body_are_written() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        for i in range(5):
            await send({"type": "http.response.body", "body": sse(f"e{i}"), "more_body": True})

    recorded = await run_app(StreamBoost(app, coalesce=CoalesceConfig(window=30)))
    assert recorded.body == b"".join(sse(f"e{i}") for i in range(5))


async def test_memoryview_chunks_from_starlette() -> None:
    records = Records()

    async def endpoint(request: Any) -> StreamingResponse:
        async def chunks() -> Any:
            yield memoryview(sse("a"))
            yield memoryview(sse("b"))[:]
            yield sse("c")

        return StreamingResponse(chunks(), media_type="text/event-stream")

    for coalesce in (True, False):
        app = StreamBoost(
            Starlette(routes=[Route("/", endpoint)]), coalesce=coalesce, observers=[records]
        )
        recorded = await run_app(app)
        assert b"".join(bytes(b) for b in recorded.bodies) == sse("a") + sse("b") + sse("c")
        assert records.ended[-1].events == 3


@pytest.mark.parametrize("fail", [False, True])
async def test_lifespan_messages_pass_through_in_order_without_writers(fail: bool) -> None:
    """Issue 2, point 6: lifespan is untouched. StreamBoost always runs it (to drain defer()
    work at shutdown), so check that the app and the server still see each other's messages,
    all of them, in order, and that a startup failure reaches the server as the app sent it."""
    to_app: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    app_saw: list[Message] = []
    server_saw: list[Message] = []
    pending = list(to_app)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        app_saw.append(await receive())
        if fail:
            await send({"type": "lifespan.startup.failed", "message": "no database"})
            return
        await send({"type": "lifespan.startup.complete"})
        app_saw.append(await receive())
        await send({"type": "lifespan.shutdown.complete"})

    async def receive() -> Message:
        return pending.pop(0)

    async def send(message: Message) -> None:
        server_saw.append(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    await asyncio.wait_for(StreamBoost(app, metrics=False, otel=False)(scope, receive, send), 5)
    if fail:
        assert app_saw == to_app[:1]
        assert server_saw == [{"type": "lifespan.startup.failed", "message": "no database"}]
    else:
        assert app_saw == to_app
        assert server_saw == [
            {"type": "lifespan.startup.complete"},
            {"type": "lifespan.shutdown.complete"},
        ]


@pytest.mark.parametrize(
    ("metadata_events", "content_events"),
    [
        (None, 3),  # the defaults: only "metadata" is skipped
        ({"usage-info", "metadata"}, 2),
        ((), 4),  # none: every data event counts
    ],
)
async def test_metadata_event_names_are_configurable(
    metadata_events: set[str] | tuple[str, ...] | None, content_events: int
) -> None:
    records = Records()
    clock = TickClock()
    steps = [
        (0.0, sse("{}", event="metadata")),
        (0.0, sse('{"prompt_tokens": 3}', event="usage-info")),
        (0.0, sse("Hello")),
        (0.0, sse(" world")),
    ]
    options: dict[str, Any] = (
        {} if metadata_events is None else {"metadata_events": metadata_events}
    )
    app = StreamBoost(
        stream_app(steps), coalesce=False, observers=[records], clock=clock, **options
    )
    await run_app(app)
    (record,) = records.ended
    assert record.content_events == content_events
    # Readings: request 1, headers 2, then one per chunk: the first token is the first chunk
    # that is not a metadata event.
    assert record.first_token_at == 3.0 + (len(steps) - content_events)


@pytest.mark.parametrize("coalesce", [False, True])
async def test_an_is_metadata_predicate_marks_events_the_names_cannot(coalesce: bool) -> None:
    """Issue 3: metadata is configurable by event names or a predicate. Here the app sends
    its status as plain ``data:`` events (no ``event:`` name), before and between tokens."""
    records = Records()
    steps = [
        (0.0, sse('{"status": "thinking"}')),
        (0.0, sse("Hello")),
        (0.0, sse('{"status": "searching"}')),
        (0.0, sse(" world")),
        (0.0, sse(" again")),
    ]
    app = StreamBoost(
        stream_app(steps),
        coalesce=coalesce,
        observers=[records],
        clock=TickClock(),
        is_metadata=lambda event: b'"status"' in event,
    )
    sent = await run_app(app)
    (record,) = records.ended
    assert record.content_events == 3
    assert record.events == 5
    # request 1, headers 2, status event 3, "Hello" 4; coalesced, each app send is read too
    # (the gap counter): status sent 3, written 4, "Hello" sent 5, written 6.
    assert record.first_token_at == (6.0 if coalesce else 4.0)
    assert sent.body == b"".join(chunk for _, chunk in steps)  # classification never edits


async def test_an_ndjson_blank_line_is_no_event() -> None:
    records = Records()
    steps = [(0.0, b'{"t": "a"}\n'), (0.0, b"\n"), (0.0, b'{"t": "b"}\n\n{"t": "c"}\n')]
    app = StreamBoost(
        stream_app(steps, content_type=b"application/x-ndjson"), coalesce=False, observers=[records]
    )
    await run_app(app)
    (record,) = records.ended
    assert (record.events, record.content_events) == (3, 3)


async def test_exported_figures_are_the_records_exactly() -> None:
    """Issue 3: TTFT = first content event - request; time per output token = (last content
    event - first) / (content events - 1); stream duration to the last body chunk. The clock
    ticks one second per reading, so every figure is a known whole number."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    records = Records()
    steps = [(0.0, b": comment\n\n")] + [(0.0, sse(f"token {i}")) for i in range(4)]
    app = StreamBoost(
        stream_app(steps),
        coalesce=False,
        clock=TickClock(),
        observers=[records],
        registry=registry,
        otel=False,
    )
    await run_app(app)
    (record,) = records.ended
    # Readings: request 1, headers 2, comment 3, tokens 4..7, the empty last body 8.
    assert (record.first_token_at, record.last_token_at, record.last_body_at) == (4.0, 7.0, 8.0)
    labels = {"method": "GET", "route": "unmatched"}

    def exported(family: str) -> float | None:
        return registry.get_sample_value(f"streamboost_{family}_seconds_sum", labels)

    assert exported("time_to_first_token") == record.time_to_first_token() == 3.0
    assert exported("time_per_output_token") == record.time_per_output_token() == 1.0
    assert exported("stream_duration") == record.stream_duration() == 7.0
    assert exported("time_to_first_byte") == 2.0
