"""Flush rules, recorded message by message in-process (issue 2, coalescing points 1-4)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.coalesce_apps import SSE, Message, Recorded, Records, openai, run_app, sse

from streamboost import CoalesceConfig, StreamBoost

LONG = 30.0  # a window no test waits for: only the rule under test can flush


def body_messages(recorded: Recorded) -> list[Message]:
    return [m for m in recorded.messages if m["type"] == "http.response.body"]


async def settle() -> None:
    """Let the flusher task run (a few loop turns, no wall-clock assumption)."""
    for _ in range(5):
        await asyncio.sleep(0)


def start(send: Any) -> Any:
    return send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", SSE)]})


def chunk(send: Any, data: bytes, more: bool = True) -> Any:
    return send({"type": "http.response.body", "body": data, "more_body": more})


async def test_start_and_first_chunk_go_out_at_once() -> None:
    recorded = Recorded()
    seen: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await start(send)
        seen.append(len(recorded.messages))
        await chunk(send, sse("first"))
        seen.append(len(recorded.messages))
        await asyncio.sleep(0.01)
        await chunk(send, b"", more=False)

    await run_app(StreamBoost(app, coalesce=CoalesceConfig(window=LONG)), recorded=recorded)
    assert seen == [1, 2]  # each was with the server before the app's send returned
    assert recorded.bodies[0] == sse("first")


async def test_every_event_up_to_the_first_token_goes_out_at_once() -> None:
    recorded = Recorded()
    seen: list[int] = []
    before = [sse("{}", event="metadata"), b": ping\n\n", openai(role="assistant", content="")]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await start(send)
        for data in [*before, openai("Hello")]:
            await chunk(send, data)
            seen.append(len(body_messages(recorded)))
        await chunk(send, openai(" world"))
        seen.append(len(body_messages(recorded)))
        await chunk(send, b"", more=False)

    records = Records()
    app_ = StreamBoost(app, coalesce=CoalesceConfig(window=LONG), observers=[records])
    await run_app(app_, recorded=recorded)
    assert seen == [1, 2, 3, 4, 4]  # after the first token, chunks batch
    (record,) = records.ended
    assert record.first_token_at is not None
    assert (record.events, record.content_events) == (5, 2)


async def test_window_flushes_even_when_the_app_sends_nothing_more() -> None:
    recorded = Recorded()
    counts: list[int] = []
    window = 0.02

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await start(send)
        await chunk(send, sse("token 0"))
        await chunk(send, sse("token 1"))
        await chunk(send, sse("token 2"))
        counts.append(len(body_messages(recorded)))
        await asyncio.sleep(0.5)  # far longer than the window: the timer must flush alone
        counts.append(len(body_messages(recorded)))
        await chunk(send, b"", more=False)

    await run_app(StreamBoost(app, coalesce=CoalesceConfig(window=window)), recorded=recorded)
    assert counts == [1, 2]
    assert recorded.bodies[1] == sse("token 1") + sse("token 2")


async def test_an_idle_stream_writes_a_new_event_at_once() -> None:
    recorded = Recorded()
    counts: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await start(send)
        await chunk(send, sse("token 0"))
        await asyncio.sleep(0.05)  # idle for longer than the window
        await chunk(send, sse("token 1"))
        counts.append(len(body_messages(recorded)))
        await chunk(send, b"", more=False)

    await run_app(StreamBoost(app, coalesce=CoalesceConfig(window=0.01)), recorded=recorded)
    assert counts == [2]


async def test_max_events_flushes_a_full_batch() -> None:
    recorded = Recorded()
    counts: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await start(send)
        await chunk(send, sse("first"))
        for i in range(7):
            await chunk(send, sse(f"token {i}"))
        await settle()
        counts.append(len(body_messages(recorded)))
        await chunk(send, sse("token 7"))  # the eighth event fills the batch
        await settle()
        counts.append(len(body_messages(recorded)))
        await chunk(send, b"", more=False)

    config = CoalesceConfig(window=LONG, max_events=8)
    await run_app(StreamBoost(app, coalesce=config), recorded=recorded)
    assert counts == [1, 2]
    assert recorded.bodies[1] == b"".join(sse(f"token {i}") for i in range(8))


async def test_max_bytes_flushes_a_full_batch() -> None:
    recorded = Recorded()
    counts: list[int] = []
    big = sse("x" * 290)  # 300 bytes

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await start(send)
        await chunk(send, sse("first"))
        for _ in range(3):
            await chunk(send, big)
        await settle()
        counts.append(len(body_messages(recorded)))
        await chunk(send, big)  # 1200 bytes >= max_bytes
        await settle()
        counts.append(len(body_messages(recorded)))
        await chunk(send, b"", more=False)

    config = CoalesceConfig(window=LONG, max_bytes=1000)
    await run_app(StreamBoost(app, coalesce=config), recorded=recorded)
    assert counts == [1, 2]
    assert recorded.bodies[1] == big * 4


@pytest.mark.parametrize(
    "critical",
    [
        sse("{}", event="done"),
        sse("boom", event="error"),
        sse('{"type": "complete"}'),
        b"data: [DONE]\n\n",
        openai(finish="stop"),
        b'data: {"object":"chat.completion.chunk","choices":[],"usage":{"total_tokens":9}}\n\n',
    ],
)
async def test_critical_event_goes_out_at_once_with_the_batch_before_it(critical: bytes) -> None:
    recorded = Recorded()
    counts: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await start(send)
        await chunk(send, sse("first"))
        await chunk(send, sse("token 1"))
        await chunk(send, sse("token 2"))
        await settle()
        counts.append(len(body_messages(recorded)))
        await chunk(send, critical)
        await settle()
        counts.append(len(body_messages(recorded)))
        await chunk(send, b"", more=False)

    await run_app(StreamBoost(app, coalesce=CoalesceConfig(window=LONG)), recorded=recorded)
    assert counts == [1, 2]
    assert recorded.bodies[1] == sse("token 1") + sse("token 2") + critical


async def test_custom_critical_events() -> None:
    recorded = Recorded()
    counts: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await start(send)
        await chunk(send, sse("first"))
        await chunk(send, sse("{}", event="done"))  # no longer critical
        await settle()
        counts.append(len(body_messages(recorded)))
        await chunk(send, sse("{}", event="tool_call"))
        await settle()
        counts.append(len(body_messages(recorded)))
        await chunk(send, b"", more=False)

    config = CoalesceConfig(window=LONG, critical_events={"tool_call"})
    await run_app(StreamBoost(app, coalesce=config), recorded=recorded)
    assert counts == [1, 2]


async def test_body_end_flushes_everything_in_the_last_write() -> None:
    steps = [sse("first")] + [sse(f"token {i}") for i in range(5)]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await start(send)
        for data in steps:
            await chunk(send, data)
        await chunk(send, b"tail\n\n", more=False)

    recorded = await run_app(StreamBoost(app, coalesce=CoalesceConfig(window=LONG)))
    bodies = body_messages(recorded)
    assert [m["more_body"] for m in bodies] == [True, False]
    assert bodies[1]["body"] == b"".join(steps[1:]) + b"tail\n\n"


async def test_an_event_split_across_chunks_stays_whole() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await start(send)
        await chunk(send, b"data: first\n\ndata: sec")  # the first event goes out at once
        await chunk(send, b"ond\n")
        await asyncio.sleep(0.1)  # windows pass while the event is unfinished
        await chunk(send, b"\ndata: third\n\ndata: fou")
        await asyncio.sleep(0.1)
        await chunk(send, b"rth\n\n", more=False)

    recorded = await run_app(StreamBoost(app, coalesce=CoalesceConfig(window=0.01)))
    assert recorded.bodies == [
        b"data: first\n\n",
        b"data: second\n\ndata: third\n\n",
        b"data: fourth\n\n",
    ]


async def test_backpressure_batches_while_a_write_is_pending_and_bounds_the_buffer() -> None:
    recorded = Recorded()
    gate = asyncio.Event()
    slow = False
    event = sse("y" * 90)  # 100 bytes
    returned = 0

    async def send_gate(message: Message) -> None:
        if slow and message["type"] == "http.response.body":
            await gate.wait()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal slow, returned
        await start(send)
        await chunk(send, sse("first"))
        slow = True
        for _ in range(200):
            await chunk(send, event)
            returned += 1
            if returned == 4:
                await settle()  # the flusher's write of 4 events now hangs on the client
        await chunk(send, b"", more=False)

    config = CoalesceConfig(window=LONG, max_events=4, max_bytes=400, max_buffer_bytes=2000)
    task = asyncio.create_task(
        run_app(StreamBoost(app, coalesce=config), send_gate=send_gate, recorded=recorded)
    )
    # Loop turns, not wall time: the app runs until its send waits for room (no more progress
    # for many turns), however slow this machine is.
    last, still = -1, 0
    for _ in range(10_000):
        await asyncio.sleep(0)
        still = still + 1 if returned == last else 0
        last = returned
        if still == 50:
            break
    # Sends kept returning while the write was pending, until 2000 bytes were held.
    assert 10 <= returned < 200
    assert not task.done()
    assert len(recorded.bodies) == 1
    gate.set()
    await asyncio.wait_for(task, 5)
    assert recorded.body == sse("first") + event * 200
    # New chunks joined the next batch instead of queueing one write each.
    assert len(recorded.bodies) < 200 // 4


async def test_send_timeout_ends_a_stream_whose_client_stopped_reading() -> None:
    frozen = asyncio.Event()
    records = Records()

    async def send_gate(message: Message) -> None:
        if message["type"] == "http.response.body" and message["body"] != sse("first"):
            await frozen.wait()  # the client never reads again

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await start(send)
        await chunk(send, sse("first"))
        for i in range(10_000):
            await chunk(send, sse(f"token {i}"))
            await asyncio.sleep(0.001)
        await chunk(send, b"", more=False)

    tasks_before = len(asyncio.all_tasks())
    config = CoalesceConfig(window=0.005, send_timeout=0.1)
    with pytest.raises(OSError, match="send_timeout"):
        await run_app(StreamBoost(app, coalesce=config, observers=[records]), send_gate=send_gate)
    await settle()
    assert len(asyncio.all_tasks()) == tasks_before
    (record,) = records.ended
    assert record.outcome == "client_disconnected"


async def test_an_unfinished_event_waits_whole_while_a_write_in_flight_holds_the_buffer() -> None:
    # The buffer is over its bound only because a write is in flight: its end makes room,
    # so the unfinished event must not be split off (hypothesis found a stream that was).
    recorded = Recorded()
    gate = asyncio.Event()
    slow = False
    event = sse("y" * 590)  # 600 bytes

    async def send_gate(message: Message) -> None:
        if slow and message["type"] == "http.response.body":
            await gate.wait()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal slow
        await start(send)
        await chunk(send, sse("first"))
        slow = True
        await chunk(send, event)  # max_events=1: the flusher writes it; the client is slow
        await settle()
        await chunk(send, event[:500])  # unfinished: 500 + 600 in flight > 1000, it waits
        await chunk(send, event[500:], more=False)

    config = CoalesceConfig(window=LONG, max_events=1, max_bytes=1000, max_buffer_bytes=1000)
    boosted = StreamBoost(app, coalesce=config)
    task = asyncio.create_task(run_app(boosted, send_gate=send_gate, recorded=recorded))
    for _ in range(50):  # loop turns: the app now waits for room, the client for the gate
        await asyncio.sleep(0)
    assert not task.done()
    gate.set()
    await asyncio.wait_for(task, 5)
    assert [body for body in recorded.bodies if body] == [sse("first"), event, event]


async def test_backpressure_with_one_huge_unfinished_event_does_not_deadlock() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await start(send)
        await chunk(send, sse("first"))
        for _ in range(50):
            await chunk(send, b"x" * 100)  # one event that never ends within the bound
        await chunk(send, b"\n\n", more=False)

    config = CoalesceConfig(window=LONG, max_bytes=1000, max_buffer_bytes=1000)
    recorded = await asyncio.wait_for(run_app(StreamBoost(app, coalesce=config)), 5)
    assert recorded.body == sse("first") + b"x" * 5000 + b"\n\n"
