"""A relay of an upstream stream, end to end: reads cut anywhere, on real servers.

An upstream OpenAI-shaped stream (as the benchmark's chunks, and as OpenAI's API sends them
today, with its "obfuscation" padding) runs on real uvicorn and writes its events in pieces that
ignore event boundaries; a StreamBoost-wrapped Starlette app, also on real uvicorn, relays
its raw reads (``async for chunk in response.aiter_raw(): yield chunk``), the way LLM proxies
do; the official openai SDK reads the relayed stream. Every token must arrive, and the record
must count the events and tokens the upstream sent, coalesced or not: the kernel's path for
chunks that are not one event (``feed_fast``, the batch mode's cut events) on a real server.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import openai
import pytest
from tests.coalesce_apps import Records
from tests.relay_apps import relay_app

from streamboost._cli._loopback import uvicorn_in_thread
from upstream_apps import DONE, chunk

TOKENS = [f" word{i}" for i in range(40)]
EVENTS = [
    chunk({"role": "assistant", "content": ""}),
    *(chunk({"content": token}) for token in TOKENS),
    chunk({}, finish="stop"),
    DONE,
]
PIECE = 37  # bytes per upstream write: never an event's length, so reads cut events


def _padded(event: bytes, i: int) -> bytes:
    """`event` as OpenAI's API sends it today: an "obfuscation" string of random characters,
    of varying length, closing every chat chunk (the kernel's two-string memo)."""
    if not event.endswith(b"}\n\n"):
        return event  # [DONE]
    return event[:-3] + b',"obfuscation":"' + b"xQ7pZ2kL9"[: 1 + i % 9] + b'"}\n\n'


SHAPES = {"openai": EVENTS, "openai-live": [_padded(e, i) for i, e in enumerate(EVENTS)]}


def upstream_of(events: list[bytes]) -> Any:
    async def upstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        stream = b"".join(events)
        for at in range(0, len(stream), PIECE):
            piece = stream[at : at + PIECE]
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            await asyncio.sleep(0.001)  # apart, so the relay mostly reads one piece at a time
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return upstream


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("coalesce", [False, True], ids=["direct", "coalesced"])
def test_a_relay_of_cut_reads_reaches_the_openai_sdk_whole_and_counted(
    coalesce: bool, shape: str
) -> None:
    records, events = Records(), SHAPES[shape]
    with uvicorn_in_thread(upstream_of(events)) as upstream_url:
        relay = relay_app(
            upstream_url, records, coalesce=coalesce, path="/v1/chat/completions", methods=("POST",)
        )
        with (
            uvicorn_in_thread(relay) as url,
            openai.OpenAI(base_url=url + "/v1", api_key="relay", max_retries=0) as client,
        ):
            stream = client.chat.completions.create(
                model="sim", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            text = "".join(part.choices[0].delta.content or "" for part in stream)
            deadline = time.monotonic() + 10  # stream_ended may follow the last byte
            while not records.ended and time.monotonic() < deadline:
                time.sleep(0.01)
    assert text == "".join(TOKENS)
    (record,) = records.ended
    # The SDK stops reading at [DONE] and may close before the chunked body's end arrives.
    assert record.outcome in ("completed", "client_disconnected")
    assert record.events == len(events)
    assert record.content_events == len(TOKENS)  # the role chunk and the finish are not tokens
    assert record.bytes_out == len(b"".join(events))
    assert record.first_token_at is not None
    assert record.chunks_in > len(events) / 2  # the relay's reads: pieces, not events
