"""Logs a newcomer reads: repeated warnings rate-limited, one line for a startup failure.

A ``gather_phases`` fallback that fires on every request warns once a minute (with the count of
those left out), and a durable writer whose Redis cannot be reached fails uvicorn's startup
with one line naming the writer and the redacted URL, no traceback and no ``CancelledError``.
The cache's invalidation-channel messages are tested in ``test_cache_redis.py`` (they need a
Redis that a test can kill).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from streamboost import DeferredWriter, Entry, StreamBoost, _phases, gather_phases
from streamboost._ratelog import RateLimitedLog


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound by this test and never listened on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_a_fallback_on_every_request_warns_once_a_minute_under_uvicorn(
    serve: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(_phases, "fallback_log", RateLimitedLog(_phases.logger, clock=clock))

    async def search() -> list[str]:
        raise ConnectionError("vector store down")

    async def endpoint(request: Request) -> PlainTextResponse:
        (docs,) = await gather_phases(rag=search(), fallbacks={"rag": []})
        return PlainTextResponse(f"{len(docs)} docs")

    app = StreamBoost(
        Starlette(routes=[Route("/", endpoint)]), registry=CollectorRegistry(), otel=False
    )
    caplog.set_level(logging.WARNING, logger="streamboost")
    with serve(app) as url, httpx.Client(base_url=url, timeout=10) as client:  # type: ignore[operator]
        for _ in range(30):
            assert client.get("/").text == "0 docs"
        first = [r for r in caplog.records if r.name.startswith("streamboost")]
        clock.now += 61  # a minute later the same fallback is logged again, with the count
        assert client.get("/").text == "0 docs"
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("streamboost")]
    assert len(first) == 1, lines
    assert lines[0] == (
        "streamboost phases: phase 'rag' used its fallback (error): "
        "ConnectionError('vector store down')"
    )
    assert len(lines) == 2, lines
    assert lines[1].endswith("(29 more like this in the last 60 s)"), lines[1]


def test_rate_limited_log_counts_per_key_and_forgets() -> None:
    logger = logging.getLogger("streamboost.test_ratelog")
    clock = FakeClock()
    log = RateLimitedLog(logger, every=10.0, clock=clock)
    assert log.warning("a", "streamboost: a") is True
    assert log.warning("a", "streamboost: a") is False
    assert log.warning("b", "streamboost: b") is True  # another key has its own interval
    clock.now += 9.9
    assert log.warning("a", "streamboost: a") is False
    assert log.forget("a") == 2
    assert log.warning("a", "streamboost: a") is True  # a new episode logs at once
    clock.now += 10.0
    assert log.warning("b", "streamboost: b") is True


DURABLE_APP = """
import contextlib
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from streamboost import DeferredWriter, StreamBoost

async def sink(entries):
    pass

@contextlib.asynccontextmanager
async def lifespan(app):
    print("app started", flush=True)
    yield
    print("app shut down", flush=True)

async def home(request):
    return PlainTextResponse("hi")

writer = DeferredWriter(sink, name="chat-log", durable="{url}")
app = StreamBoost(Starlette(routes=[Route("/", home)], lifespan=lifespan), writers=[writer])
"""


def test_a_durable_writer_without_redis_fails_startup_in_one_line(
    tmp_path: Path, closed_port: int
) -> None:
    url = f"redis://app:s3cret@127.0.0.1:{closed_port}/0"
    (tmp_path / "durable_app.py").write_text(textwrap.dedent(DURABLE_APP.format(url=url)))
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "OTEL_SDK_DISABLED": "true"}
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "durable_app:app", "--host", "127.0.0.1",
         "--port", "0", "--lifespan", "on"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr  # uvicorn's STARTUP_FAILURE
    assert result.stdout.splitlines() == ["app started", "app shut down"]
    assert "Traceback" not in result.stderr and "CancelledError" not in result.stderr
    assert "s3cret" not in result.stderr
    ours = [line for line in result.stderr.splitlines() if "streamboost" in line]
    assert len(ours) == 1, result.stderr
    expected = (
        f"streamboost: deferred writer 'chat-log' cannot use Redis at "
        f"redis://app:***@127.0.0.1:{closed_port}/0 (ConnectionError: "
    )
    assert expected in ours[0], ours[0]
    assert ours[0].endswith("start Redis there or fix durable="), ours[0]


async def test_a_durable_writer_without_redis_raises_one_clear_error(closed_port: int) -> None:
    async def sink(entries: list[Entry[int]]) -> None:
        pass

    writer: DeferredWriter[int] = DeferredWriter(
        sink,
        name="audit",
        durable=f"redis://:pw@127.0.0.1:{closed_port}/0",
        registry=CollectorRegistry(),
    )
    with pytest.raises(ConnectionError) as caught:
        async with asyncio.timeout(30):
            await writer.start()
    message = str(caught.value)
    assert message.startswith(
        f"streamboost: deferred writer 'audit' cannot use Redis at "
        f"redis://:***@127.0.0.1:{closed_port}/0 ("
    )
    assert "pw@" not in message and not writer.running
