"""A sparse relayed stream whose events come cut in pieces is not held for the window.

An upstream on real uvicorn writes an OpenAI-shaped event every ``SPACING`` seconds, each in
``CUT`` pieces a couple of milliseconds apart; a StreamBoost-wrapped Starlette app, also on
real uvicorn, relays its reads (``async for chunk in response.aiter_raw(): yield chunk``);
a real httpx client stamps each event as it arrives. The write-at-once rule's gap is between
events (a piece that ends none is no gap observation), so each event goes out when its last
piece arrives. Before, the pieces' short gaps made the event's end look like a burst's: it
waited for the window, and the next event joined it.

No fixed latency bound: the window is long (``WINDOW``) and the spacing between half a
window (the rule's short gap) and a whole one (so no event goes out for a window idle), and
the test asserts no event was held for as much as half a window, and one write per event.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from tests.coalesce_apps import Records
from tests.relay_apps import relay_app

from streamboost import CoalesceConfig
from streamboost._cli._loopback import uvicorn_in_thread
from upstream_apps import chunk

WINDOW = 0.3
SPACING = 0.2  # sparse: over WINDOW / 2; under WINDOW, so the idle rule does not decide
CUT = 4  # pieces per event
EVENTS = [chunk({"role": "assistant", "content": ""})] + [
    chunk({"content": f" word{i}"}) for i in range(8)
]


def upstream(last_piece_at: list[float]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for index, event in enumerate(EVENTS):
            if index:
                await asyncio.sleep(SPACING)
            step = -(-len(event) // CUT)
            for at in range(0, len(event), step):
                if at:
                    await asyncio.sleep(0.002)  # apart: the relay reads each piece on its own
                if at + step >= len(event):
                    last_piece_at.append(time.monotonic())
                piece = event[at : at + step]
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def test_a_sparse_relay_of_cut_events_has_each_event_sent_when_its_last_piece_comes() -> None:
    records, last_piece_at, arrived = Records(), list[float](), list[float]()
    received = b""
    with (
        uvicorn_in_thread(upstream(last_piece_at)) as upstream_url,
        uvicorn_in_thread(
            relay_app(upstream_url, records, coalesce=CoalesceConfig(window=WINDOW))
        ) as url,
        httpx.Client(timeout=10) as client,
        client.stream("GET", url + "/relay") as response,
    ):
        for data in response.iter_raw():
            received += data
            arrived.extend(time.monotonic() for _ in range(data.count(b"\n\n")))
        deadline = time.monotonic() + 10  # stream_ended may follow the last byte
        while not records.ended and time.monotonic() < deadline:
            time.sleep(0.01)
    assert received == b"".join(EVENTS)
    (record,) = records.ended
    assert record.chunks_in > 2 * len(EVENTS)  # the relay's reads: pieces, not events
    held = [round(got - sent, 4) for got, sent in zip(arrived, last_piece_at, strict=True)]
    assert max(held) < WINDOW / 2, held  # before: every other event waited ~ a window
    assert record.writes >= len(EVENTS)  # one write per event (before: about half as many)
