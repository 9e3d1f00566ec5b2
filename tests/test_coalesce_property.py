"""Property (issue 2, coalescing point 2): bytes out == bytes in, each event whole in one write.

Random events (sizes, comments, CRLF line endings), cut into random chunks at random points,
sent with random pauses through random flush limits.
"""

from __future__ import annotations

import asyncio
import bisect
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.coalesce_apps import Records, run_app, stream_app

from streamboost import CoalesceConfig, StreamBoost


@st.composite
def event(draw: st.DrawFn, end: bytes) -> bytes:
    size = draw(st.integers(min_value=0, max_value=400))
    if draw(st.integers(0, 9)) == 0:
        return b": ping" + end + end
    name = draw(st.sampled_from([b"", b"event: token" + end, b"event: done" + end]))
    return name + b"data: " + b"x" * size + end + end


@st.composite
def stream(draw: st.DrawFn) -> tuple[list[bytes], list[tuple[float, bytes]], CoalesceConfig]:
    end = draw(st.sampled_from([b"\n", b"\r\n"]))  # one line ending per stream
    events = draw(st.lists(event(end), min_size=1, max_size=40))
    data = b"".join(events)
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=60))))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    pauses = st.sampled_from([0.0, 0.0, 0.0, 0.0005, 0.002, 0.006])
    steps = [(draw(pauses), piece) for piece in pieces if piece]
    config = CoalesceConfig(
        window=draw(st.sampled_from([0.001, 0.004, 0.02])),
        max_events=draw(st.integers(1, 20)),
        max_bytes=draw(st.integers(64, 4096)),
    )
    return events, steps, config


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
def test_bytes_are_exact_and_events_whole(
    case: tuple[list[bytes], list[tuple[float, bytes]], CoalesceConfig],
) -> None:
    events, steps, config = case
    records = Records()
    app: Any = StreamBoost(stream_app(steps), coalesce=config, observers=[records])
    recorded = asyncio.run(run_app(app))
    writes = [body for body in recorded.bodies if body]
    assert b"".join(writes) == b"".join(events)
    ends = []
    offset = 0
    for body in writes:
        offset += len(body)
        ends.append(offset)
    for start, end in event_spans(events):
        index = bisect.bisect_right(ends, start)  # the write holding the event's first byte
        assert end <= ends[index], f"event {start}:{end} split across writes ending {ends}"
    (record,) = records.ended
    assert record.events == len(events)
    assert record.bytes_out == len(b"".join(events))
    assert record.writes == len(recorded.bodies)
