"""Merged OpenAI chunks keep the last id of what they merged (issue 17, part 2), with the app's
own ids and with resume's stamped ids, on real uvicorn and a real httpx client: every id a
client sees is one a resume can start from, and the resume gives exactly what follows it.

The app (``make_app``, uvicorn ``--factory``) streams ``n`` content chunks ``t<i> `` 1 ms
apart; with ``ids=app`` each carries ``id: <i>``, and a request with ``Last-Event-ID: <k>``
gets the chunks after ``k`` (the app's own resume). ``MERGE_RESUME=on`` adds StreamBoost's.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from tests.metrics_apps import server_process
from tests.needs import free_port, scratch_prefix

from streamboost._stream._openai import merge_chunks

STAMPED = re.compile(rb"^[0-9a-f]{32}-[0-9]+$")


def chunk(text: str) -> bytes:
    body = {"id": "c1", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}}]}  # fmt: skip
    return b"data: " + orjson.dumps(body)


def make_app() -> Any:
    from prometheus_client import CollectorRegistry
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from streamboost import CoalesceConfig, ResumeConfig, StreamBoost

    async def chat(request: Request) -> StreamingResponse:
        n = int(request.query_params.get("n", "60"))
        with_ids = request.query_params.get("ids") == "app"
        after = int(request.headers.get("last-event-id", "-1")) if with_ids else -1

        async def body() -> AsyncIterator[bytes]:
            for i in range(after + 1, n):
                yield chunk(f"t{i} ") + (b"\nid: %d" % i if with_ids else b"") + b"\n\n"
                await asyncio.sleep(0.001)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    resume = None
    if os.environ.get("MERGE_RESUME") == "on":
        resume = ResumeConfig(
            redis_url=os.environ["MERGE_REDIS_URL"],
            owner=lambda scope: dict(scope["headers"]).get(b"x-user", b"").decode() or None,
            key_prefix=os.environ["MERGE_PREFIX"],
            ttl=60.0,
        )
    return StreamBoost(
        Starlette(routes=[Route("/chat", chat)]),
        coalesce=CoalesceConfig(window=0.03, max_events=64, merge_openai=True),
        registry=CollectorRegistry(),
        otel=False,
        resume=resume,
    )


def events(body: bytes) -> list[tuple[bytes | None, bytes, bytes]]:
    """(last id line's value, content or the data, the whole block) of each event."""
    assert body.endswith(b"\n\n"), body[-80:]
    out = []
    for block in body.split(b"\n\n")[:-1]:
        ident = None
        data = b""
        for line in block.split(b"\n"):
            if line.startswith(b"id: "):
                ident = line[4:]
            elif line.startswith(b"data: "):
                data = line[6:]
        text = data if data == b"[DONE]" else orjson.loads(data)["choices"][0]["delta"]["content"]
        out.append((ident, text if isinstance(text, bytes) else text.encode(), block + b"\n\n"))
    return out


def test_merged_event_keeps_the_last_id_line() -> None:
    body = (
        chunk("a") + b"\nid: 1\n\n"
        + b"id: 2\n" + chunk("b") + b"\n\n"
        + chunk("c") + b"\n\n"  # no id: the client's last event id stays 2
        + chunk("d") + b"\nid: 4\x00x\n\n"  # a NUL: ignored by a browser, and here
        + b"data: [DONE]\n\n"
    )  # fmt: skip
    merged = merge_chunks(body)
    assert [(i, t) for i, t, _ in events(merged)] == [(b"2", b"abcd"), (None, b"[DONE]")]
    assert merge_chunks(chunk("a") + b"\n\n" + chunk("b") + b"\nid\n\n" + b"data: [DONE]\n\n") == (
        chunk("ab") + b"\nid\n\n" + b"data: [DONE]\n\n"
    )  # an empty id (it resets the last event id) is kept as it was
    untouched = chunk("a") + b"\nevent: x\n\n" + chunk("b") + b"\n\n" + b"data: [DONE]\n\n"
    assert merge_chunks(untouched) == untouched  # other fields: not merged


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    async with scratch_prefix(redis_url, "sbtest:mergeids:{}:") as name:
        yield name


def _command(port: int) -> list[str]:
    return [
        "uvicorn", "--factory", "tests.test_openai_merge_ids:make_app",
        "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip


def tokens(first: int, n: int) -> bytes:
    return "".join(f"t{i} " for i in range(first, n)).encode()


async def test_app_ids_survive_merging_and_resume_from_each(redis_url: str, prefix: str) -> None:
    port = free_port()
    n = 80
    with server_process(_command(port), port, {"MERGE_RESUME": "off"}) as base:
        async with httpx.AsyncClient(timeout=30.0) as http:
            got = events((await http.get(f"{base}/chat?n={n}&ids=app")).content)
            assert len(got) < n // 2  # chunks were merged
            assert b"".join(t for _, t, _ in got[:-1]) == tokens(0, n)
            seen = 0
            for ident, text, _ in got[:-1]:
                seen += text.count(b" ")
                assert ident == b"%d" % (seen - 1), (ident, text)  # the last merged chunk's id
            for ident, _, _ in got[:-1]:
                assert ident is not None
                r = await http.get(
                    f"{base}/chat?n={n}&ids=app", headers={"last-event-id": ident.decode()}
                )
                rest = events(r.content)
                assert b"".join(t for _, t, _ in rest[:-1]) == tokens(int(ident) + 1, n)


@pytest.mark.parametrize("ids", ["app", "none"])
async def test_stamped_ids_of_merged_events_resume_exactly(
    redis_url: str, prefix: str, ids: str
) -> None:
    port = free_port()
    n = 80
    env = {"MERGE_RESUME": "on", "MERGE_REDIS_URL": redis_url, "MERGE_PREFIX": prefix}
    with server_process(_command(port), port, env) as base:
        async with httpx.AsyncClient(timeout=30.0) as http:
            headers = {"x-user": "ann"}
            body = (await http.get(f"{base}/chat?n={n}&ids={ids}", headers=headers)).content
            got = events(body)
            assert len(got) < n // 2  # chunks were merged
            assert b"".join(t for _, t, _ in got[:-1]) == tokens(0, n)
            stamped = [ident for ident, _, _ in got]
            assert all(i is not None and STAMPED.match(i) for i in stamped), stamped
            seqs = [int(i.rsplit(b"-", 1)[1]) for i in stamped if i is not None]
            assert seqs == list(range(1, len(got) + 1))  # one id per merged event
            for at, ident in enumerate(stamped):
                assert ident is not None
                r = await http.get(
                    f"{base}/chat", headers={**headers, "last-event-id": ident.decode()}
                )
                if at == len(got) - 1:
                    assert r.status_code == 204  # after the last event: nothing, stop
                    continue
                assert r.status_code == 200
                # Byte for byte what the uninterrupted client got after that event.
                assert r.content == b"".join(block for _, _, block in got[at + 1 :])
