"""Property (issue 2, coalescing point 2): bytes out == bytes in, each event whole in one write.

Random events (sizes, comments, critical names, LF or CRLF lines), cut into random chunks at
random points, sent with random pauses through random flush limits to a client that is
sometimes slow to read.
"""

from __future__ import annotations

import asyncio
import bisect
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.coalesce_apps import Message, Records, run_app, stream_app

from streamboost import CoalesceConfig, StreamBoost

Case = tuple[list[bytes], list[tuple[float, bytes]], CoalesceConfig, list[float]]


@st.composite
def event(draw: st.DrawFn) -> bytes:
    size = draw(st.integers(min_value=0, max_value=400))
    end = draw(st.sampled_from([b"\n", b"\r\n"]))
    if draw(st.integers(0, 9)) == 0:
        return b": ping" + end + end
    name = draw(st.sampled_from([b"", b"event: token" + end, b"event: done" + end]))
    return name + b"data: " + b"x" * size + end + end


@st.composite
def stream(draw: st.DrawFn) -> Case:
    events = draw(st.lists(event(), min_size=1, max_size=40))
    data = b"".join(events)
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=60))))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    pauses = st.sampled_from([0.0, 0.0, 0.0, 0.0005, 0.002, 0.006])
    steps = [(draw(pauses), piece) for piece in pieces if piece]
    max_bytes = draw(st.integers(64, 4096))
    config = CoalesceConfig(
        window=draw(st.sampled_from([0.001, 0.004, 0.02])),
        max_events=draw(st.integers(1, 20)),
        max_bytes=max_bytes,
        # Room for two whole events, so only the rules under test decide the writes.
        max_buffer_bytes=max(max_bytes, draw(st.sampled_from([1024, 4096, 1 << 20]))),
    )
    slow_client = draw(st.lists(st.sampled_from([0.0, 0.0, 0.001, 0.004]), max_size=20))
    return events, steps, config, slow_client


def event_spans(events: list[bytes]) -> list[tuple[int, int]]:
    spans, offset = [], 0
    for item in events:
        spans.append((offset, offset + len(item)))
        offset += len(item)
    return spans


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(stream())
def test_bytes_are_exact_and_events_whole(case: Case) -> None:
    events, steps, config, slow_client = case
    records = Records()
    app: Any = StreamBoost(stream_app(steps), coalesce=config, observers=[records])
    delays = iter(slow_client)

    async def client_reads(message: Message) -> None:  # some writes wait on a slow client
        delay = next(delays, 0.0)
        if delay:
            await asyncio.sleep(delay)

    recorded = asyncio.run(run_app(app, send_gate=client_reads))
    writes = [body for body in recorded.bodies if body]
    assert b"".join(writes) == b"".join(events)
    ends = []
    offset = 0
    for body in writes:
        offset += len(body)
        ends.append(offset)
    joined = b"".join(events)
    for start, end in event_spans(events):
        index = bisect.bisect_right(ends, start)  # the write holding the event's first byte
        if joined.endswith(b"\r\n\r\n", 0, end):
            end -= 1  # whole at its last CR (the SSE spec's CR ending); the LF may follow
        assert end <= ends[index], f"event {start}:{end} split across writes ending {ends}"
    (record,) = records.ended
    assert record.events == len(events)
    assert record.bytes_out == len(b"".join(events))
    assert record.writes == len(recorded.bodies)
