"""Headless Chromium's own EventSource against a resumable stream that the network cuts.

A TCP proxy between the browser and a real uvicorn drops the first two event-stream
connections after ~1.2 kB of their response; EventSource reconnects by itself with
``Last-Event-ID`` and the page must end with every event's data, once each, in order.
Chromium is Debian's (``/usr/bin/chromium``, installed by ``.ci/prepare``), driven by
playwright without its browser download.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import orjson
import pytest
from tests.needs import missing, scratch_prefix

from resume_apps import build
from streamboost._cli._loopback import uvicorn_in_thread

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FOUND = os.path.exists(CHROMIUM)  # at import: no blocking call inside the test


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    async with scratch_prefix(redis_url, "sbtest:resume:{}:") as name:
        yield name


class CuttingProxy:
    """Forwards 127.0.0.1 connections; cuts event-stream responses after ``after`` bytes."""

    def __init__(self, upstream_port: int, cuts: int, after: int) -> None:
        self.upstream_port, self.cuts_left, self.after = upstream_port, cuts, after
        self.cut = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def upstream() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
                await up_writer.drain()

        task = asyncio.ensure_future(upstream())
        self.tasks.add(task)
        seen = b""
        cutting = False
        try:
            while data := await up_reader.read(4096):
                seen += data
                if not cutting and b"text/event-stream" in seen and self.cuts_left > 0:
                    cutting = True
                    self.cuts_left -= 1
                    seen = b""
                if cutting and len(seen) >= self.after:
                    self.cut += 1
                    break  # drop both sides mid-stream
                writer.write(data)
                await writer.drain()
        finally:
            task.cancel()
            writer.close()
            up_writer.close()


async def test_chromium_eventsource_resumes_by_itself(redis_url: str, prefix: str) -> None:
    if not CHROMIUM_FOUND:
        missing(f"{CHROMIUM} is not installed; install it with: apt-get install -y chromium")
    from playwright.async_api import async_playwright

    app = build(redis_url, prefix)
    with uvicorn_in_thread(app) as base:
        proxy = CuttingProxy(int(base.rsplit(":", 1)[1]), cuts=2, after=1200)
        server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with async_playwright() as play:
                browser = await play.chromium.launch(executable_path=CHROMIUM)
                try:
                    page = await browser.new_page()
                    await page.goto(f"http://127.0.0.1:{port}/page")
                    await page.wait_for_function("window.finished === true", timeout=60_000)
                    got = await page.evaluate("window.got")
                    errors = await page.evaluate("window.errors")
                finally:
                    await browser.close()
        finally:
            server.close()
            for task in proxy.tasks:
                task.cancel()
    want = [orjson.dumps({"stream": 7, "i": i, "text": f"tok{i} "}).decode() for i in range(60)]
    pings = [data for data in got if data == "{}"]
    assert [data for data in got if data != "{}"] == want
    assert len(pings) <= 1  # a ping goes to the live client only, never replayed
    assert proxy.cut == 2 and errors >= 2  # it was cut twice and reconnected by itself
