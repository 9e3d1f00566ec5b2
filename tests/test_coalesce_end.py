"""A coalesced body's empty last message with nothing buffered goes to the server as it is.

That is the usual end of a stream (Starlette sends one after the last chunk), and it used to
take the coalescer's whole flush (a coroutine for the write, one for its bound, the join).
Now it is counted and sent like direct mode's, where that send is recognisable (no
``send_timeout``, no health timer); with bytes still buffered the final flush carries them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from tests.coalesce_apps import Message, Records, run_app, sse

from streamboost import CoalesceConfig, StreamBoost

START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/event-stream")],
}
END = {"type": "http.response.body", "body": b"", "more_body": False}
FIELDS = ("chunks_in", "events", "content_events", "writes", "bytes_out", "outcome")


def _app(chunks: list[bytes], end: Message) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(START)
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send(end)

    return app


def _boosted(app: Any, records: Records, **config: Any) -> StreamBoost:
    coalesce = CoalesceConfig(window=0.05, **config)
    return StreamBoost(
        app, coalesce=coalesce, registry=CollectorRegistry(), otel=False, observers=[records]
    )


async def test_the_empty_end_goes_as_the_app_sent_it() -> None:
    records = Records()
    end = dict(END)
    recorded = await run_app(_boosted(_app([sse("a")], end), records))
    assert recorded.messages[-1] is end  # not a flush's own message
    assert recorded.body == sse("a")
    record = records.ended[0]
    assert [getattr(record, f) for f in FIELDS] == [2, 1, 1, 2, 3 + 6, "completed"]
    assert record.last_body_at is not None


@pytest.mark.parametrize(
    "config", [{"send_timeout": 5.0}, {"keepalive": 5.0}], ids=["send_timeout", "keepalive"]
)
async def test_a_bounded_or_watched_end_takes_the_flush(config: dict[str, Any]) -> None:
    records = Records()
    end = dict(END)
    recorded = await run_app(_boosted(_app([sse("a")], end), records, **config))
    assert recorded.messages[-1] is not end
    assert recorded.messages[-1]["more_body"] is False
    assert recorded.body == sse("a")
    assert [getattr(records.ended[0], f) for f in FIELDS] == [2, 1, 1, 2, 9, "completed"]


async def test_buffered_bytes_go_out_with_the_end() -> None:
    records = Records()
    end = dict(END)
    unfinished = b"data: half"  # an event that never ends: buffered until the end
    recorded = await run_app(_boosted(_app([sse("a"), unfinished], end), records))
    assert recorded.messages[-1] is not end
    assert recorded.bodies[-1] == unfinished
    assert recorded.body == sse("a") + unfinished


async def test_a_failed_end_is_the_client_leaving() -> None:
    records = Records()

    async def gate(message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            raise OSError("the client is gone")

    with pytest.raises(OSError):
        await run_app(_boosted(_app([sse("a")], dict(END)), records), send_gate=gate)
    assert records.ended[0].outcome == "client_disconnected"


def _paced(chunks: list[bytes], pause: float, end: Message) -> Any:
    """Sends ``chunks`` back to back, sleeps ``pause``, then ends with ``end``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(START)
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await asyncio.sleep(pause)
        await send(end)

    return app


async def test_after_the_flusher_went_idle_the_end_goes_as_it_is() -> None:
    records = Records()
    end = dict(END)
    chunks = [sse("a"), sse("b"), sse("c")]  # the first at once, the rest a batch
    recorded = await run_app(_boosted(_paced(chunks, 0.2, end), records))
    assert recorded.messages[-1] is end
    assert recorded.bodies == [sse("a"), sse("b") + sse("c"), b""]
    assert records.ended[0].writes == 3


async def test_a_batch_still_waiting_goes_out_with_the_end() -> None:
    records = Records()
    end = dict(END)
    chunks = [sse("a"), sse("b"), sse("c")]
    recorded = await run_app(_boosted(_paced(chunks, 0.0, end), records))
    assert recorded.messages[-1] is not end
    assert recorded.bodies == [sse("a"), sse("b") + sse("c")]
    assert records.ended[0].writes == 2
