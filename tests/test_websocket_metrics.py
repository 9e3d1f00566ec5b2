"""WebSocket metrics (issue 14, point 3): real uvicorn on 127.0.0.1, the real ``websockets``
client, the real ``/metrics``; with batching off and on."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry
from tests.needs import free_port
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from metrics_apps import server_process
from streamboost import CoalesceConfig, StreamBoost
from streamboost._cli._loopback import uvicorn_in_thread
from streamboost._export._spec_websocket import WEBSOCKET_FAMILIES
from streamboost._export.prometheus._websocket import ClientFamilies, FastWebSockets, collector
from ws_apps import sample, scrape, scrape_until, ws_app, ws_url

TEMPLATE = "/ws/{room}"
CONNECTIONS = "streamboost_websocket_connections_total"
MESSAGES = "streamboost_websocket_messages_total"
WRITES = "streamboost_websocket_writes_total"
ACTIVE = "streamboost_websocket_connections_active"
DURATION = "streamboost_websocket_connection_duration_seconds_count"
FIRST = "streamboost_websocket_time_to_first_message_seconds_count"
WS = "websockets-sansio"  # uvicorn's current implementation on the websockets library


async def chat(url: str, texts: list[str], close_code: int | None = 1000) -> list[Any]:
    """Send each text and read its answer; then close with ``close_code`` (None: send the
    last text and wait for the server's close). Returns the answers."""
    answers: list[Any] = []
    async with connect(url) as ws:
        for text in texts:
            await ws.send(text)
            if text.startswith("close:"):
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None
                answers.append(closed.value.rcvd.code)
                return answers
            answers.append(orjson.loads(await ws.recv()))
        if close_code is not None:
            await ws.close(code=close_code)
    return answers


@pytest.mark.parametrize("ws", ["websockets-sansio", "wsproto"])
@pytest.mark.parametrize("batching", [False, True], ids=["unbatched", "batched"])
def test_connections_messages_and_close_codes_by_route_template(ws: str, batching: bool) -> None:
    registry = CollectorRegistry()
    coalesce = CoalesceConfig(websocket=True) if batching else True
    app = StreamBoost(ws_app(), registry=registry, otel=False, coalesce=coalesce)

    async def clients(base: str) -> None:
        # Three rooms, one route template: two clients close (1000, 4000), the app closes
        # the third with 4001 when asked.
        a = await chat(ws_url(base, "/ws/a"), ["x", "y"], close_code=1000)
        b = await chat(ws_url(base, "/ws/b"), ["x"], close_code=4000)
        c = await chat(ws_url(base, "/ws/c"), ["x", "close:4001"])
        m = await chat(ws_url(base, "/rooms/r1/live"), ["x"])
        wanted: list[Any] = [{"echo": "x"}]
        # Batched, every message is an array (of one here: each answer waits for a question).
        echo = [[item] for item in wanted] if batching else wanted
        assert a == [echo[0], [{"echo": "y"}] if batching else {"echo": "y"}]
        assert b == echo and m == echo and c == [*echo, 4001]

    with uvicorn_in_thread(app, ws=ws) as base:
        asyncio.run(clients(base))
        samples = scrape_until(
            base,
            lambda s: sum(v for (n, _), v in s.items() if n == CONNECTIONS) == 4,
        )
    route = {"route": TEMPLATE}
    assert sample(samples, CONNECTIONS, code="1000", **route) == 1
    assert sample(samples, CONNECTIONS, code="4000", **route) == 1
    assert sample(samples, CONNECTIONS, code="4001", **route) == 1
    mounted = {"route": "/rooms/{room}/live"}
    assert sample(samples, CONNECTIONS, code="1000", **mounted) == 1
    # Route templates only, never the raw paths.
    routes = {dict(labels).get("route") for _, labels in samples}
    assert routes == {TEMPLATE, "/rooms/{room}/live"}
    assert sample(samples, MESSAGES, direction="in", **route) == 5  # x y, x, x close:4001
    assert sample(samples, MESSAGES, direction="out", **route) == 4  # every echo
    assert sample(samples, WRITES, **route) == 4  # each answer alone in its window
    assert sample(samples, ACTIVE, **route) == 0
    assert sample(samples, DURATION, **route) == 3
    assert sample(samples, FIRST, **route) == 3
    assert sample(samples, DURATION, **mounted) == 1


def test_active_gauge_counts_open_connections() -> None:
    registry = CollectorRegistry()
    app = StreamBoost(ws_app(), registry=registry, otel=False)

    async def clients(base: str) -> tuple[float, float]:
        async with connect(ws_url(base, "/ws/a")) as a, connect(ws_url(base, "/ws/b")) as b:
            for ws in (a, b):
                await ws.send("hi")
                await ws.recv()  # accepted and answered: the gauge went up
            open_now = await asyncio.to_thread(scrape, base)
        after = await asyncio.to_thread(
            scrape_until, base, lambda s: sample(s, CONNECTIONS, route=TEMPLATE, code="1000") == 2
        )
        return sample(open_now, ACTIVE, route=TEMPLATE), sample(after, ACTIVE, route=TEMPLATE)

    with uvicorn_in_thread(app, ws=WS) as base:
        during, after = asyncio.run(clients(base))
    assert (during, after) == (2, 0)


def test_rejected_and_failed_connections_have_their_codes() -> None:
    registry = CollectorRegistry()
    app = StreamBoost(ws_app(), registry=registry, otel=False)

    async def clients(base: str) -> None:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(base, "/reject")):
                pass
        assert refused.value.response.status_code == 403
        async with connect(ws_url(base, "/boom")) as ws:
            await ws.send("go")
            with pytest.raises(ConnectionClosed):
                await ws.recv()

    with uvicorn_in_thread(app, ws=WS) as base:
        asyncio.run(clients(base))
        samples = scrape_until(base, lambda s: sample(s, CONNECTIONS, route="/boom", code="1011"))
    assert sample(samples, CONNECTIONS, route="/reject", code="rejected") == 1
    assert sample(samples, CONNECTIONS, route="/boom", code="1011") == 1
    # A refused connection was never open: the gauge never moved for it.
    assert sample(samples, ACTIVE, route="/reject") == 0
    assert sample(samples, ACTIVE, route="/boom") == 0
    assert sample(samples, MESSAGES, route="/boom", direction="in") == 1
    assert sample(samples, FIRST, route="/boom") == 0  # it never sent anything


def test_route_option_and_max_series_apply_to_websockets() -> None:
    registry = CollectorRegistry()
    seen: list[str] = []

    def route(scope: dict[str, Any]) -> str | None:
        seen.append(scope["type"])
        return scope["path"]  # raw paths: unbounded on purpose, so the cap must hold them

    app = StreamBoost(ws_app(), registry=registry, otel=False, route=route, max_series=2)

    async def clients(base: str) -> None:
        for name in "abcde":
            await chat(ws_url(base, f"/ws/{name}"), ["x"], close_code=4000 + ord(name))

    with uvicorn_in_thread(app, ws=WS) as base:
        asyncio.run(clients(base))
        samples = scrape_until(
            base, lambda s: sum(v for (n, _), v in s.items() if n == CONNECTIONS) == 5
        )
    assert "websocket" in seen
    routes = {dict(labels)["route"] for name, labels in samples if name == DURATION}
    assert routes == {"/ws/a", "/ws/b", "overflow"}
    assert sample(samples, DURATION, route="overflow") == 3
    assert sample(samples, CONNECTIONS, route="/ws/a", code=str(4000 + ord("a"))) == 1
    assert sample(samples, CONNECTIONS, route="/ws/b", code=str(4000 + ord("b"))) == 1
    assert sample(samples, CONNECTIONS, route="overflow", code="4xxx") == 3
    codes = {labels for name, labels in samples if name == CONNECTIONS}
    assert len(codes) == 3


def test_opentelemetry_instruments() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    app = StreamBoost(ws_app(), metrics=False, meter_provider=provider)

    async def clients(base: str) -> None:
        await chat(ws_url(base, "/ws/a"), ["x", "y"], close_code=1000)
        await chat(ws_url(base, "/ws/b"), ["x", "close:4001"])

    def points() -> dict[str, list[Any]]:
        data = reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found

    with uvicorn_in_thread(app, ws=WS) as base:
        asyncio.run(clients(base))
        got = points()
        for _ in range(300):  # bounded: the server observes a close after the client saw it
            if sum(p.value for p in got.get("streamboost.websocket.connections", [])) >= 2:
                break
            time.sleep(0.05)
            got = points()
    connections = {
        p.attributes["streamboost.websocket.close_code"]: p.value
        for p in got["streamboost.websocket.connections"]
    }
    assert connections == {"1000": 1, "4001": 1}
    assert {p.attributes["http.route"] for p in got["streamboost.websocket.connections"]} == {
        TEMPLATE
    }
    messages = {
        p.attributes["network.io.direction"]: p.value for p in got["streamboost.websocket.messages"]
    }
    assert messages == {"receive": 4, "transmit": 3}
    (duration,) = got["streamboost.websocket.connection.duration"]
    assert duration.count == 2
    (first,) = got["streamboost.websocket.time_to_first_message"]
    assert first.count == 2
    (active,) = got["streamboost.websocket.active_connections"]
    assert active.value == 0
    (writes,) = got["streamboost.websocket.writes"]
    assert writes.value == 3


def test_both_backends_export_exactly_the_websocket_spec_families() -> None:
    want = {(f.name, f.help, f.kind) for f in WEBSOCKET_FAMILIES}
    assert len(want) == 6
    fast = {(m.name, m.documentation, m.type) for m in collector(FastWebSockets()).collect()}
    families = vars(ClientFamilies(CollectorRegistry())).values()
    client = {(m.name, m.documentation, m.type) for c in families for m in c.collect()}
    assert fast == want
    assert client == want


def test_multiprocess_workers_sum_their_connections(tmp_path: Path) -> None:
    """Two uvicorn workers in multiprocess mode: every connection counted once, summed."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    port = free_port()
    argv = [
        "uvicorn",
        "--workers",
        "2",
        "--ws",
        WS,
        "--port",
        str(port),
        "tests.ws_apps:server_app",
    ]
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    count = 12

    async def clients(base: str) -> None:
        async def one(i: int) -> None:
            await chat(ws_url(base, f"/ws/{i}"), ["x", "y"], close_code=1000 + (i % 2) * 3000)

        await asyncio.gather(*(one(i) for i in range(count)))

    with server_process(argv, port, env) as base:
        asyncio.run(clients(base))
        samples = scrape_until(
            base, lambda s: sum(v for (n, _), v in s.items() if n == CONNECTIONS) == count
        )
    route = {"route": TEMPLATE}
    assert sample(samples, CONNECTIONS, code="1000", **route) == count / 2
    assert sample(samples, CONNECTIONS, code="4000", **route) == count / 2
    assert sample(samples, MESSAGES, direction="in", **route) == 2 * count
    assert sample(samples, MESSAGES, direction="out", **route) == 2 * count
    assert sample(samples, WRITES, **route) == 2 * count
    assert sample(samples, DURATION, **route) == count
    assert sample(samples, ACTIVE, **route) == 0
    files = {p.name.split("_")[0] for p in directory.glob("*.db")}
    assert "gauge" in files and "counter" in files


async def _deny(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
    await send({"type": "websocket.http.response.body", "body": b"no"})


async def _bad_code(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 999})


async def _default_code(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close"})


async def _returns(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})


async def _client_leaves(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass
    await send({"type": "websocket.close", "code": 1000})  # too late: the client's code stands


@pytest.mark.parametrize(
    ("app", "incoming", "code"),
    [
        (_deny, [], "rejected"),  # the denial-response extension
        (_bad_code, [], "other"),
        (_default_code, [], "1000"),
        (_returns, [], "1006"),
        (_client_leaves, [{"type": "websocket.disconnect"}], "1005"),  # no code given
        (_client_leaves, [{"type": "websocket.disconnect", "code": 4100}], "4100"),
    ],
)
async def test_close_code_rules(app: Any, incoming: list[dict[str, Any]], code: str) -> None:
    registry = CollectorRegistry()
    queue = [{"type": "websocket.connect"}, *incoming]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "headers": []}
    await StreamBoost(app, registry=registry, otel=False)(scope, receive, send)
    labels = {"route": "unmatched", "code": code}
    assert registry.get_sample_value(CONNECTIONS, labels) == 1
    assert registry.get_sample_value(ACTIVE, {"route": "unmatched"}) == 0


def test_under_trio_connections_are_counted_and_batching_is_skipped() -> None:
    from tests.test_trio import hypercorn_trio

    registry = CollectorRegistry()
    app = StreamBoost(
        ws_app(), registry=registry, otel=False, coalesce=CoalesceConfig(websocket=True)
    )

    async def clients(base: str) -> list[Any]:
        # The app closes: hypercorn reports a client's close as 1006 whatever its code (its
        # websocket.disconnect carries 1006 while the connection is open), the app's code is
        # on the wire as sent.
        return await chat(ws_url(base, "/ws/a"), ["x", "y", "close:4001"])

    with hypercorn_trio(app) as base:
        answers = asyncio.run(clients(base))
        samples = scrape_until(base, lambda s: sample(s, CONNECTIONS, route=TEMPLATE, code="4001"))
    assert answers == [{"echo": "x"}, {"echo": "y"}, 4001]  # as the app sent them: not arrays
    assert sample(samples, CONNECTIONS, route=TEMPLATE, code="4001") == 1
    assert sample(samples, MESSAGES, route=TEMPLATE, direction="in") == 3
    assert sample(samples, WRITES, route=TEMPLATE) == 2
    assert sample(samples, ACTIVE, route=TEMPLATE) == 0
