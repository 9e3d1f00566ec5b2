"""Prometheus export under real servers: TTFT accuracy against a real client, disconnects,
and multiprocess mode (uvicorn --workers 2, gunicorn with uvicorn workers)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import h11
import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from tests.metrics_apps import server_process, starlette_app, value
from tests.needs import free_port

from streamboost import StreamBoost
from streamboost._cli._loopback import uvicorn_in_thread

ROOT = str(Path(__file__).resolve().parent.parent)
ROUTE = "/stream/{n:int}"


def scraped(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics scrape, keyed by (name, sorted labels)."""
    text = httpx.get(base + "/metrics", timeout=10).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


LABELS = (("method", "GET"), ("route", ROUTE))


def scraped_after(base: str, streams: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A scrape that includes ``streams`` streams: the server observes a stream after its
    last byte went out, so the client can be faster than the observation."""
    count = ("streamboost_time_to_first_token_seconds_count", LABELS)
    deadline = time.monotonic() + 10
    while True:
        samples = scraped(base)
        if samples.get(count, 0.0) >= streams or time.monotonic() > deadline:
            return samples
        time.sleep(0.005)


class RawClient:
    """HTTP/1.1 over one keep-alive loopback socket, timed at the socket calls themselves
    (no client library between the clock and the wire); h11 parses what was read, after
    the clock stopped."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        self.sock.close()

    def get(self, target: str) -> tuple[float, float, h11.Response, bytes]:
        """(request written at, first ``data:`` read at, response head, body)."""
        conn = h11.Connection(h11.CLIENT)
        request = conn.send(h11.Request(method="GET", target=target, headers=[("host", "t")]))
        request += conn.send(h11.EndOfMessage())
        sent_at = time.perf_counter()
        self.sock.sendall(request)
        token_read_at = None
        head: h11.Response | None = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = self.sock.recv(65536)
                if token_read_at is None and b"data:" in data:
                    token_read_at = time.perf_counter()
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"unexpected {event!r}")
        assert head is not None and token_read_at is not None
        return sent_at, token_read_at, head, body


def test_ttft_matches_what_a_real_client_observes_within_1ms() -> None:
    """Per request, the server's TTFT window (request seen -> first token written, read back
    from the exported histogram sum) is placed on the client's clock: it must lie inside the
    client's window (request written -> first token read), and the two must differ by less
    than 1 ms.

    The difference is loopback transit, uvicorn's parsing and scheduling. Noise on a shared
    machine only ever adds to it, so the smallest over several tries is the systematic error;
    the loop stops once five tries are in and one is under 1 ms, after 40 otherwise.
    """
    # Both processes read time.perf_counter; comparing readings across them needs a
    # system-wide clock.
    if "CLOCK_MONOTONIC" not in time.get_clock_info("perf_counter").implementation:
        pytest.skip("perf_counter is not CLOCK_MONOTONIC here: no clock shared across processes")
    tries, enough = 40, 5
    port = free_port()
    argv = ["uvicorn", "tests.metrics_apps:server_app", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--log-level", "warning"]
    ttft_sum = ("streamboost_time_to_first_token_seconds_sum", LABELS)
    bytes_key = ("streamboost_response_bytes_total", LABELS)
    with server_process(argv, port, {"PYTHONPATH": ROOT}) as base:
        client = RawClient(port)
        try:
            client.get("/stream/1")  # warm: the connection is open for the measured ones
            differences: list[float] = []
            for i in range(tries):
                before = scraped_after(base, i + 1)
                sent_at, token_read_at, head, body = client.get("/stream/3?delay=0.05&gap=0.002")
                after = scraped_after(base, i + 2)
                server_ttft = after[ttft_sum] - before[ttft_sum]
                assert after[bytes_key] - before[bytes_key] == len(body)
                assert body.count(b"data:") == 3
                assert server_ttft >= 0.049  # the app sleeps 50 ms before its first token
                # One clock for both processes: the server's window sits inside the client's.
                request_at = float(dict(head.headers)[b"x-request-at"])
                assert sent_at < request_at, (sent_at, request_at)
                assert request_at + server_ttft < token_read_at, (request_at, server_ttft)
                differences.append((token_read_at - sent_at) - server_ttft)
                if len(differences) >= enough and min(differences) < 0.001:
                    break
        finally:
            client.close()
    assert min(differences) < 0.001, differences


async def test_200_clients_that_disconnect_mid_stream() -> None:
    registry = CollectorRegistry()
    app = StreamBoost(starlette_app(), registry=registry, otel=False)
    labels = {"method": "GET", "route": ROUTE}
    with uvicorn_in_thread(app) as base:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:

            async def leave_after_first_token() -> None:
                url = base + "/stream/3000?gap=0.01"
                async with client.stream("GET", url) as response:
                    async for chunk in response.aiter_raw():
                        if b"data:" in chunk:
                            return  # closes the connection mid-stream

            await asyncio.gather(*(leave_after_first_token() for _ in range(200)))
        disconnected = 0.0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            disconnected = value(
                registry, "streamboost_streams_total", **labels, outcome="client_disconnected"
            )
            if disconnected == 200 and value(registry, "streamboost_streams_active", **labels) == 0:
                break
            await asyncio.sleep(0.05)
    assert disconnected == 200
    assert value(registry, "streamboost_streams_active", **labels) == 0
    assert value(registry, "streamboost_streams_total", **labels, outcome="completed") == 0
    assert value(registry, "streamboost_time_to_first_token_seconds_count", **labels) == 200


MULTIPROCESS_SERVERS = {
    "uvicorn-workers": ["uvicorn", "tests.metrics_apps:server_app", "--workers", "2"],
    "gunicorn-uvicorn": [
        "gunicorn",
        "-k",
        "uvicorn.workers.UvicornWorker",
        "-w",
        "2",
        "tests.metrics_apps:server_app",
    ],
}


@pytest.mark.parametrize("server", sorted(MULTIPROCESS_SERVERS))
def test_multiprocess_counts_of_every_worker_add_up(server: str, tmp_path: Path) -> None:
    port = free_port()
    argv = list(MULTIPROCESS_SERVERS[server])
    if server.startswith("gunicorn"):
        argv += ["-b", f"127.0.0.1:{port}", "--log-level", "warning"]
    else:
        argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    env = {"PYTHONPATH": ROOT, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    with server_process(argv, port, env) as base:
        pids: set[str] = set()
        sent = 0
        # New connection per request so the kernel spreads them; stop once both served some
        # (the second worker may still be starting when the first answers).
        deadline = time.monotonic() + 30
        while (len(pids) < 2 or sent < 20) and time.monotonic() < deadline:
            response = httpx.get(base + "/stream/2", headers={"connection": "close"})
            assert response.text.count("data:") == 2
            pids.add(response.headers["x-pid"])
            sent += 1
        assert len(pids) == 2, f"one worker served all {sent} requests"
        deadline = time.monotonic() + 10  # the last stream is observed after its last byte
        while total(scraped(base), "streamboost_http_requests_total") < sent:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for _ in range(2):  # either worker may answer the scrape: both see every worker
            samples = scraped(base)
            assert total(samples, "streamboost_http_requests_total") == sent
            completed = (
                "streamboost_streams_total",
                (("method", "GET"), ("outcome", "completed"), ("route", ROUTE)),
            )
            assert samples[completed] == sent
            assert total(samples, "streamboost_time_to_first_token_seconds_count") == sent
            assert total(samples, "streamboost_streams_active") == 0
