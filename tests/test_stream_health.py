"""Stream health (issue 16, points 1 and 2): keepalive pings, inter-token gaps, stall_timeout.

Keepalive and stalls against real uvicorn and a real httpx client that measures the silence
between the bytes it receives; gap counts from recorded ASGI messages and a driven clock.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from streamboost import CoalesceConfig, StreamBoost
from streamboost._cli._loopback import uvicorn_in_thread
from streamboost._stream import OUTCOME_STALLED, StreamRecord
from streamboost._stream._table import GAP_BOUNDS

SSE_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/event-stream")],
}


class Records:
    def __init__(self) -> None:
        self.ended: list[StreamRecord] = []

    def stream_started(self, record: StreamRecord) -> None:
        pass

    def stream_ended(self, record: StreamRecord) -> None:
        self.ended.append(record)


def body(data: bytes, more: bool = True) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


def received(url: str) -> list[tuple[float, bytes]]:
    """(seconds since the response headers, chunk) for each chunk the client reads."""
    out: list[tuple[float, bytes]] = []
    with httpx.stream("GET", url, timeout=10) as response:
        t0 = time.perf_counter()
        for chunk in response.iter_raw():
            out.append((time.perf_counter() - t0, chunk))
    return out


def wait_for(records: Records, n: int) -> None:
    for _ in range(500):  # the record ends just after the last byte: bounded wait
        if len(records.ended) >= n:
            return
        time.sleep(0.01)
    raise AssertionError(f"{len(records.ended)} streams ended, not {n}")


async def slow_first_token(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(SSE_START)
    await asyncio.sleep(1.2)  # a model thinking before its first token
    for _ in range(3):
        await send(body(b"data: t\n\n"))
    await asyncio.sleep(0.8)  # and a pause mid-stream
    await send(body(b"data: t\n\n", more=False))


def test_keepalive_pings_fill_silence_and_count_as_nothing() -> None:
    records = Records()
    app = StreamBoost(
        slow_first_token,
        coalesce=CoalesceConfig(keepalive=0.1),
        observers=[records],
        metrics=False,
        otel=False,
    )
    with uvicorn_in_thread(app, lifespan="off") as url:
        chunks = received(url + "/")
        wait_for(records, 1)
    data = b"".join(c for _, c in chunks)
    assert data.replace(b": ping\n\n", b"") == b"data: t\n\n" * 4
    pings = data.count(b": ping\n\n")
    assert pings >= 4  # 2 s of silence in all, a ping per 0.1 s of it (slack for the machine)
    # The client never waited as long as the app was silent: the pings filled the gaps.
    silences = [b - a for (a, _), (b, _) in zip([(0.0, b""), *chunks], chunks, strict=False)]
    assert max(silences) < 0.75, silences
    first_data = next(t for t, c in chunks if b"data:" in c)
    assert first_data >= 1.0 and any(t < first_data for t, c in chunks if c == b": ping\n\n")
    record = records.ended[0]
    # Pings are not events, tokens, writes, bytes, the first byte or the first token.
    assert (record.events, record.content_events) == (4, 4)
    assert record.bytes_out == len(b"data: t\n\n") * 4
    assert record.writes <= 4
    assert record.first_byte_at is not None and record.first_byte_at - record.request_at >= 1.1
    ttft = record.time_to_first_token()
    assert ttft is not None and ttft >= 1.1
    assert record.outcome == "completed"
    # The app's gaps: two of 0 s (one write), one of ~0 s, the 0.8 s pause.
    assert sum(record.gap_counts) == 3 and record.gap_max >= 0.75


async def ndjson_quiet(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    ndjson = [(b"content-type", b"application/x-ndjson")]
    await send({"type": "http.response.start", "status": 200, "headers": ndjson})
    await asyncio.sleep(0.5)
    await send(body(b'{"t": 1}\n', more=False))


@pytest.mark.parametrize("ping", [None, b"\n"])
def test_ndjson_keepalive_sends_only_what_is_configured(ping: bytes | None) -> None:
    app = StreamBoost(
        ndjson_quiet,
        coalesce=CoalesceConfig(keepalive=0.1, keepalive_ndjson=ping),
        metrics=False,
        otel=False,
    )
    with uvicorn_in_thread(app, lifespan="off") as url:
        data = b"".join(c for _, c in received(url + "/"))
    rest = data.removesuffix(b'{"t": 1}\n')
    assert rest == (b"" if ping is None else b"\n" * len(rest)) and (ping is None or rest)


def stalling_app(cancelled: list[str]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(SSE_START)
        await send(body(b"data: one\n\n"))
        try:
            await asyncio.sleep(30)  # the upstream stopped answering
        except asyncio.CancelledError:
            cancelled.append(scope["path"])
            raise
        await send(body(b"data: never\n\n", more=False))

    return app


@pytest.mark.parametrize(
    ("event", "want"),
    [
        (None, b'event: error\ndata: {"error": "stalled"}\n\n'),
        (b"event: error\ndata: upstream quiet\n\n", b"event: error\ndata: upstream quiet\n\n"),
    ],
)
def test_stall_timeout_ends_a_silent_stream_with_its_error_event(
    event: bytes | None, want: bytes
) -> None:
    records, cancelled = Records(), []
    options: dict[str, Any] = {"stall_timeout": 0.3}
    if event is not None:
        options["stall_event"] = event
    app = StreamBoost(
        stalling_app(cancelled),
        coalesce=CoalesceConfig(**options),
        observers=[records],
        metrics=False,
        otel=False,
    )
    with uvicorn_in_thread(app, lifespan="off") as url:
        chunks = received(url + "/stalls")
        wait_for(records, 1)
        again = httpx.get(url + "/after", timeout=10)  # the server still serves
    assert b"".join(c for _, c in chunks) == b"data: one\n\n" + want
    assert chunks[-1][0] >= 0.25
    assert cancelled == ["/stalls", "/after"]
    assert again.status_code == 200
    record = records.ended[0]
    assert record.outcome == OUTCOME_STALLED
    assert (record.events, record.content_events) == (1, 1)
    assert record.bytes_out == len(b"data: one\n\n")  # the stall event is not the app's


async def run_recorded(app: Any, clock: Any) -> tuple[list[dict[str, Any]], StreamRecord]:
    records = Records()
    boosted = StreamBoost(app, observers=[records], clock=clock, metrics=False, otel=False)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    await boosted(scope, receive, send)
    return sent, records.ended[0]


def test_gaps_are_counted_between_the_apps_content_events_not_writes() -> None:
    now = [100.0]
    gaps = [0.25, 0.25, 2.0, 0.0, 40.0]  # exact in binary

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(SSE_START)
        await send(body(b": comment\n\n"))  # not content: no gap starts
        await send(body(b"data: 0\n\n"))
        for i, gap in enumerate(gaps, 1):
            now[0] += gap
            await send(body(f"data: {i}\n\n".encode()))
            await asyncio.sleep(0)
        await send(body(b"data: a\n\ndata: b\n\n", more=False))  # two in one message: 0 s

    sent, record = asyncio.run(run_recorded(app, lambda: now[0]))
    assert b"".join(m.get("body", b"") for m in sent).count(b"data:") == 8
    want = [0] * (len(GAP_BOUNDS) + 1)
    want[GAP_BOUNDS.index(0.25)] = 2
    want[GAP_BOUNDS.index(2.5)] = 1
    want[0] = 1 + 2  # the 0 s gap, then the last message's two events
    want[GAP_BOUNDS.index(60.0)] = 1
    assert list(record.gap_counts) == want
    assert (record.gap_max, record.gap_sum) == (40.0, 42.5)
    assert sum(want) == record.content_events - 1  # one gap per pair of content events


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"keepalive": 0}, "keepalive=0 must be > 0"),
        ({"stall_timeout": -1.0}, "stall_timeout=-1.0 must be > 0"),
        ({"keepalive_ndjson": b"\n"}, "has no effect without keepalive"),
        ({"keepalive": 5, "keepalive_ndjson": b"x"}, "ending in a newline"),
        ({"stall_event": b"data: x\n"}, "ending in a blank line"),
        ({"stall_event_ndjson": b"{}"}, "ending in a newline"),
    ],
)
def test_health_options_are_validated(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CoalesceConfig(**options)


def test_health_seconds_must_be_numbers() -> None:
    with pytest.raises(TypeError, match="did you mean keepalive=15"):
        CoalesceConfig(keepalive="15s")  # type: ignore[arg-type]
