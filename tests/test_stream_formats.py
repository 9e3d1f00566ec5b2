"""Stream format presets (issue 14, point 2), end to end: recorded protocol streams replayed by
an app under real uvicorn, read by a real httpx client.

Every fixture in ``tests/fixtures/streams/`` is one protocol's stream as its documentation
shows it (written by us), each event with the delay before it and its role: ``metadata``
(no token), ``content`` (tokens) or ``critical`` (to be written at once). The app notes the
server clock just before and just after its send of each event, so the first real token's
time is known on the server side: the record's ``first_token_at`` must fall inside that send
(and within 5 ms of its start), never at an earlier metadata event, whose delay before the
first token is 100 ms or more. Under coalescing (a 30 s window, so only the first token, a
critical event or the end write a batch) the app waits, bounded, until each critical event
is on the wire before it goes on. The suite runs once with the C kernel and once with
``STREAMBOOST_NO_EXTENSIONS=1``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.coalesce_apps import Records

from streamboost import CoalesceConfig, StreamBoost
from streamboost._cli._loopback import uvicorn_in_thread
from streamboost._stream import DEFAULT_CLOCK, StreamRecord

FIXTURES = {
    path.stem: json.loads(path.read_text())
    for path in sorted((Path(__file__).parent / "fixtures" / "streams").glob("*.json"))
}
COALESCE = CoalesceConfig(window=30, max_events=1000)


@dataclass
class Replay:
    """One replayed request: the app's send times per event, and what reached the server."""

    sent: list[tuple[float, float]] = field(default_factory=list)
    wire: list[bytes] = field(default_factory=list)
    unwritten: list[int] = field(default_factory=list)  # critical events never written


REPLAYS: dict[str, Replay] = {}


def replay_app(coalesce: bool) -> Any:
    """``GET /{fixture}?id=...``: the fixture's events, each after its delay."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        fixture = FIXTURES[scope["path"].strip("/")]
        replay = REPLAYS[scope["query_string"].decode().partition("=")[2]]
        headers = [(b"content-type", fixture["content_type"].encode())]
        headers += [(name.encode(), value.encode()) for name, value in fixture["headers"]]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for index, event in enumerate(fixture["events"]):
            await asyncio.sleep(event["delay"])
            body = event["body"].encode()
            before = DEFAULT_CLOCK()
            await send({"type": "http.response.body", "body": body, "more_body": True})
            replay.sent.append((before, DEFAULT_CLOCK()))
            if coalesce and event["role"] == "critical":
                for _ in range(1000):  # at most ~5 s; a buffered event would wait 30 s
                    if body in b"".join(replay.wire):
                        break
                    await asyncio.sleep(0.005)
                else:
                    replay.unwritten.append(index)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def wire(inner: Any) -> Any:
    """Outside StreamBoost: note every body StreamBoost hands to the server."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        replay = None
        if scope["type"] == "http":
            replay = REPLAYS[scope["query_string"].decode().partition("=")[2]]

        async def noting(message: Any) -> None:
            if replay is not None and message["type"] == "http.response.body":
                replay.wire.append(bytes(message.get("body", b"")))
            await send(message)

        await inner(scope, receive, noting)

    return app


FORMATS = ("auto", "openai", "openai-responses", "anthropic", "langgraph", "vercel-ai", "plain")


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[tuple[str, bool], tuple[str, Records]]]:
    """One uvicorn per (stream_format, coalesce), started once for the module."""
    started: dict[tuple[str, bool], tuple[str, Records]] = {}
    contexts = []
    try:
        for coalesce in (True, False):
            for stream_format in FORMATS:
                records = Records()
                boosted = StreamBoost(
                    replay_app(coalesce),
                    stream_format=stream_format,
                    coalesce=COALESCE if coalesce else False,
                    observers=[records],
                    metrics=False,
                    otel=False,
                )
                context = uvicorn_in_thread(wire(boosted), lifespan="off")
                base_url = context.__enter__()
                contexts.append(context)
                started[stream_format, coalesce] = (base_url, records)
        yield started
    finally:
        for context in reversed(contexts):
            context.__exit__(None, None, None)


def replay(
    servers: dict[tuple[str, bool], tuple[str, Records]],
    name: str,
    stream_format: str,
    coalesce: bool,
) -> tuple[Replay, StreamRecord, bytes]:
    base_url, records = servers[stream_format, coalesce]
    key = f"{name}-{stream_format}-{coalesce}-{time.monotonic_ns()}"
    REPLAYS[key] = state = Replay()
    seen = len(records.ended)
    with httpx.Client(base_url=base_url, timeout=20) as client:
        response = client.get(f"/{name}", params={"id": key})
    assert response.status_code == 200
    for _ in range(400):  # the record ends just after the last send
        if len(records.ended) > seen:
            break
        time.sleep(0.005)
    record = next(r for r in records.ended if r.scope["query_string"].decode().endswith(key))
    return state, record, response.content


def roles(name: str) -> list[str]:
    return [event["role"] for event in FIXTURES[name]["events"]]


CASES = [
    pytest.param(name, stream_format, coalesce, id=f"{name}-{stream_format}-{coalesce}")
    for name, fixture in FIXTURES.items()
    for stream_format in (fixture["stream_format"], *(("auto",) if fixture["auto"] else ()))
    for coalesce in (True, False)
]


def test_every_protocol_has_a_fixture() -> None:
    formats = {fixture["stream_format"] for fixture in FIXTURES.values()}
    assert formats == set(FORMATS) - {"auto", "plain"}


@pytest.mark.parametrize(("name", "stream_format", "coalesce"), CASES)
def test_the_first_token_is_the_first_real_token(
    servers: dict[tuple[str, bool], tuple[str, Records]],
    name: str,
    stream_format: str,
    coalesce: bool,
) -> None:
    state, record, body = replay(servers, name, stream_format, coalesce)
    events = FIXTURES[name]["events"]
    assert body == "".join(event["body"] for event in events).encode()
    kinds = roles(name)
    first = kinds.index("content")
    assert max(event["delay"] for event in events[1 : first + 1]) >= 0.1, "no gap to tell by"
    before, after = state.sent[first]
    assert record.first_token_at is not None
    # Stamped inside the app's send of the first real token: no metadata event set it.
    assert before <= record.first_token_at <= after
    assert record.first_token_at - before < 0.005
    assert record.content_events == kinds.count("content")
    assert record.events == len(events)
    assert record.outcome == "completed"
    if coalesce:
        assert state.unwritten == [], "critical events left in the buffer"
        assert record.writes < len(events), "nothing was coalesced: the check proves nothing"


@pytest.mark.parametrize("coalesce", [True, False])
def test_without_its_preset_langgraph_counts_the_echo_of_the_input(
    servers: dict[tuple[str, bool], tuple[str, Records]], coalesce: bool
) -> None:
    """The issue's report: under ``auto`` the ``values`` echo of the input is the first token."""
    state, record, _ = replay(servers, "langgraph_messages_tuple", "auto", coalesce)
    echo = roles("langgraph_messages_tuple").index("metadata", 1)  # event: values
    before, after = state.sent[echo]
    assert record.first_token_at is not None
    assert before <= record.first_token_at <= after


@pytest.mark.parametrize("coalesce", [True, False])
def test_plain_counts_anthropics_message_start(
    servers: dict[tuple[str, bool], tuple[str, Records]], coalesce: bool
) -> None:
    """``plain`` knows no protocol: ``message_start`` is its first token (the issue's 0 ms)."""
    state, record, _ = replay(servers, "anthropic_messages", "plain", coalesce)
    before, after = state.sent[0]
    assert record.first_token_at is not None
    assert before <= record.first_token_at <= after


def test_an_unknown_stream_format_is_refused_with_the_choices() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    with pytest.raises(ValueError, match=r"stream_format='anthropic-messages'.*'anthropic'"):
        StreamBoost(app, stream_format="anthropic-messages", metrics=False, otel=False)
    with pytest.raises(ValueError, match=r"stream_format=None"):
        StreamBoost(app, stream_format=None, metrics=False, otel=False)  # type: ignore[arg-type]
