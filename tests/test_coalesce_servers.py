"""End to end (issue 2, coalescing points 5 and 10): real servers, real httpx clients."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from tests.coalesce_apps import EVENTS, Records, server_app
from tests.needs import free_port

from streamboost._cli._loopback import uvicorn_in_thread

ROOT = Path(__file__).resolve().parent.parent


def read_stream(base_url: str) -> tuple[bytes, int]:
    """GET /stream with a real client; return the body and how many reads it took."""
    reads = 0
    data = b""
    with (
        httpx.Client(base_url=base_url, timeout=10) as client,
        client.stream("GET", "/stream") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for piece in response.iter_raw():
            reads += 1
            data += piece
    return data, reads


def check_stream(data: bytes, records: Records | None) -> None:
    assert data == b"".join(EVENTS)
    if records is not None:
        record = records.ended[-1]
        assert record.outcome == "completed"
        assert record.events == len(EVENTS)
        # The first event alone, then batches: far fewer writes than events.
        assert record.writes < len(EVENTS) // 2


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@contextmanager
def hypercorn_in_thread(app: Any) -> Iterator[str]:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.listen(128)
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns and closes the socket
    config.loglevel = "WARNING"
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def run() -> None:
        loop.run_until_complete(serve(app, config, shutdown_trigger=stop.wait))
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def test_uvicorn_end_to_end() -> None:
    records = Records()
    with uvicorn_in_thread(server_app(records)) as url:
        data, _ = read_stream(url)
    check_stream(data, records)


def test_hypercorn_end_to_end() -> None:
    records = Records()
    with hypercorn_in_thread(server_app(records)) as url:
        data, _ = read_stream(url)
    check_stream(data, records)


def test_granian_end_to_end() -> None:
    port = free_port()
    command = [
        sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--log-level", "warning",
        "tests.coalesce_apps:granian_app",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True
    )
    try:
        wait_for_port(port, process)
        data, _ = read_stream(f"http://127.0.0.1:{port}")
        stats = httpx.get(f"http://127.0.0.1:{port}/stats").json()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    check_stream(data, None)
    assert stats["outcome"] == "completed" and stats["events"] == len(EVENTS)
    assert stats["writes"] < len(EVENTS) // 2


def test_client_closing_mid_stream_on_uvicorn_stops_it_and_leaks_no_task() -> None:
    records = Records()
    produced: list[int] = []
    ended = threading.Event()

    class Signal:
        def stream_started(self, record: Any) -> None:
            pass

        def stream_ended(self, record: Any) -> None:
            if record.scope["path"] == "/endless":
                ended.set()

    app = server_app(records, produced)
    app.observers = (*app.observers, Signal())
    with uvicorn_in_thread(app) as url:
        baseline = httpx.get(f"{url}/tasks").json()["tasks"]
        with (
            httpx.Client(base_url=url, timeout=10) as client,
            client.stream("GET", "/endless") as response,
        ):
            got = b""
            for piece in response.iter_raw():
                got += piece
                if got.count(b"\n\n") >= 100:
                    break
        assert ended.wait(10), "the stream did not end after the client left"
        stopped_at = len(produced)
        time.sleep(0.1)
        assert len(produced) == stopped_at  # the app stopped producing
        # Cancelled tasks finish within a loop turn or two; poll (bounded) rather than sleep.
        for _ in range(50):
            after = httpx.get(f"{url}/tasks").json()["tasks"]
            if after <= baseline:
                break
            time.sleep(0.1)
    assert after == baseline
    record = next(r for r in records.ended if r.scope["path"] == "/endless")
    assert record.outcome == "client_disconnected"
    assert 100 <= record.events < 1_000_000


def test_send_timeout_ends_a_frozen_client_on_uvicorn() -> None:
    records = Records()
    app = server_app(records, send_timeout=0.5)
    with uvicorn_in_thread(app) as url:
        baseline = httpx.get(f"{url}/tasks").json()["tasks"]
        host, port = url.removeprefix("http://").split(":")
        with socket.socket() as frozen:
            frozen.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            frozen.connect((host, int(port)))
            frozen.sendall(b"GET /big HTTP/1.1\r\nhost: test\r\n\r\n")
            assert frozen.recv(65536).startswith(b"HTTP/1.1 200")
            # ...and never reads again, while the app streams 32 KiB events.
            for _ in range(200):
                if any(r.scope["path"] == "/big" for r in records.ended):
                    break
                time.sleep(0.1)
            record = next(r for r in records.ended if r.scope["path"] == "/big")
        assert record.outcome == "client_disconnected"
        for _ in range(50):
            after = httpx.get(f"{url}/tasks").json()["tasks"]
            if after <= baseline:
                break
            time.sleep(0.1)
    assert after == baseline
