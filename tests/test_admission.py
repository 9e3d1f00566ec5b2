"""Admission control in one process: real uvicorn (127.0.0.1), real httpx clients.

Streams hold until the test opens their gate, so who runs, who waits and who is rejected is
decided by the admission alone, never by timing: the test waits (bounded) for the state it
expects, then checks it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry

from admission_apps import EVENTS, LocalCounts, exempt_state, hold_app
from streamboost import AdmissionConfig, SharedLimit, StreamBoost
from streamboost._cli._loopback import uvicorn_in_thread

BODY = b"".join(b'data: {"i": %d}\n\n' % i for i in range(EVENTS))


async def until(check: Callable[[], Awaitable[bool]], what: str, tries: int = 1000) -> None:
    """Poll ``check`` (10 ms apart, bounded) until it holds."""
    for _ in range(tries):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def state(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/state")
    result: dict[str, Any] = response.json()
    return result


def client(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base,
        timeout=60,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=0),
    )


def serve(admission: AdmissionConfig) -> tuple[Any, LocalCounts, CollectorRegistry]:
    counts, registry = LocalCounts(), CollectorRegistry()
    app = hold_app(admission, counts, registry)
    # The registry's collector holds gates weakly, and the app is in a reference cycle
    # (Starlette's state points back at it): once the server is gone only the counts keep it
    # alive, or a GC between two scrapes would empty the registry mid-test.
    counts.app = app
    return uvicorn_in_thread(app), counts, registry


async def release(counts: LocalCounts, futures: Sequence[Awaitable[httpx.Response]]) -> None:
    """Open the gate and let every client finish (also when the test failed half-way)."""
    counts.open = True
    await asyncio.gather(*futures, return_exceptions=True)


def reason(response: httpx.Response) -> str:
    code: str = orjson.loads(response.content)["error"]["code"]
    return code


async def test_three_times_the_limit() -> None:
    limit, queue = 4, 4
    server, counts, registry = serve(
        AdmissionConfig(limit=limit, max_queue=queue, max_wait=60, exempt=exempt_state)
    )
    with server as base:
        async with client(base) as http:
            tasks = [
                asyncio.ensure_future(http.post("/stream", json={"n": i})) for i in range(3 * limit)
            ]

            async def settled() -> bool:
                s = await state(http)
                answered = sum(t.done() for t in tasks)
                return s["active"] == limit and s["waiting"] == queue and answered == limit

            try:
                await until(settled, "limit running, queue full, the rest answered")
                assert counts.running == limit
                rejected = [t.result() for t in tasks if t.done()]
            finally:
                await release(counts, tasks)
            responses = [t.result() for t in tasks]
    assert counts.peak == limit  # never more than the limit ran at once
    for response in rejected:
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1"
        assert reason(response) == "queue_full"
    accepted = [r for r in responses if r.status_code == 200]
    assert len(accepted) == limit + queue
    assert all(r.content == BODY for r in accepted)  # no accepted stream failed
    assert sorted(counts.bodies) == sorted(orjson.dumps({"n": i}) for i in range(3 * limit)
                                           if tasks[i].result().status_code == 200)  # fmt: skip
    assert (
        registry.get_sample_value(
            "streamboost_admission_rejected_total", {"route": "*", "reason": "queue_full"}
        )
        == limit
    )
    assert (
        registry.get_sample_value(
            "streamboost_admission_wait_seconds_count", {"route": "*", "result": "admitted"}
        )
        == limit + queue
    )
    # The queued requests' wait is their phase "queue" (the TTFT breakdown's histogram).
    assert (
        registry.get_sample_value(
            "streamboost_phase_duration_seconds_count", {"route": "/stream", "phase": "queue"}
        )
        == queue
    )


async def test_the_wait_is_bounded_by_max_wait() -> None:
    limit, queue = 2, 4
    server, counts, registry = serve(
        AdmissionConfig(limit=limit, max_queue=queue, max_wait=0.3, exempt=exempt_state)
    )
    with server as base:
        async with client(base) as http:
            tasks = [asyncio.ensure_future(http.get("/stream")) for _ in range(3 * limit)]

            async def answered() -> bool:
                return sum(t.done() for t in tasks) == 3 * limit - limit

            try:
                # The gate stays closed: the queued requests come back on their deadline.
                await until(answered, "every request but the running ones answered")
                rejected = [t.result() for t in tasks if t.done()]
                assert counts.running == limit and counts.peak == limit
            finally:
                await release(counts, tasks)
            assert [t.result().status_code for t in tasks].count(200) == limit
    assert {r.status_code for r in rejected} == {429}
    assert all(r.headers["retry-after"] == "1" for r in rejected)
    assert sorted(reason(r) for r in rejected) == ["timeout"] * queue
    waited = registry.get_sample_value(
        "streamboost_admission_wait_seconds_sum", {"route": "*", "result": "rejected"}
    )
    assert waited is not None and waited >= queue * 0.3
    le = registry.get_sample_value(
        "streamboost_admission_wait_seconds_bucket",
        {"route": "*", "result": "rejected", "le": "60.0"},
    )
    assert le == queue  # every wait ended well before a minute


async def test_priority_orders_the_queue_and_displaces_the_last() -> None:
    by_tag = lambda scope: float(dict(scope["headers"]).get(b"x-priority", b"0"))  # noqa: E731
    server, counts, _ = serve(
        AdmissionConfig(limit=1, max_queue=2, max_wait=60, priority=by_tag, exempt=exempt_state)
    )
    with server as base:
        async with client(base) as http:

            def get(tag: str, priority: int) -> asyncio.Future[httpx.Response]:
                return asyncio.ensure_future(
                    http.get("/stream", params={"tag": tag}, headers={"x-priority": str(priority)})
                )

            first = get("first", 0)
            low = low2 = high = first
            try:
                await until(lambda: _is(counts.running == 1), "the first runs")
                low = get("low", 0)
                await until(lambda: _waiting(http, 1), "low queued")
                low2 = get("low2", 0)
                await until(lambda: _waiting(http, 2), "low2 queued")
                high = get("high", 5)  # the queue is full: low2, the last, gives its place up
                displaced = await low2
                lowest = await get("lowest", -1)  # full again, and lower than all: rejected
            finally:
                await release(counts, [first, low, low2, high])
            done = [first.result(), low.result(), high.result()]
    assert displaced.status_code == 429 and reason(displaced) == "displaced"
    assert lowest.status_code == 429 and reason(lowest) == "queue_full"
    assert [r.status_code for r in done] == [200, 200, 200]
    assert counts.entered == ["first", "high", "low"]


async def _is(value: bool) -> bool:
    return value


async def _waiting(http: httpx.AsyncClient, n: int) -> bool:
    return bool((await state(http))["waiting"] == n)


async def test_a_client_leaving_the_queue_frees_its_place() -> None:
    server, counts, registry = serve(
        AdmissionConfig(limit=1, max_queue=1, max_wait=60, exempt=exempt_state)
    )
    with server as base:
        async with client(base) as http:
            first = later = asyncio.ensure_future(http.get("/stream", params={"tag": "first"}))
            try:
                await until(lambda: _is(counts.running == 1), "the first runs")
                async with client(base) as leaving:
                    gone = asyncio.ensure_future(leaving.get("/stream", params={"tag": "gone"}))
                    await until(lambda: _waiting(http, 1), "queued")
                    gone.cancel()
                    await asyncio.gather(gone, return_exceptions=True)
                await until(lambda: _waiting(http, 0), "the queue emptied when its client left")
                later = asyncio.ensure_future(http.get("/stream", params={"tag": "later"}))
                await until(lambda: _waiting(http, 1), "the freed place taken")
            finally:
                await release(counts, [first, later])
            responses = [first.result(), later.result()]
    assert [r.status_code for r in responses] == [200, 200]
    assert counts.entered == ["first", "later"]  # the departed request never ran
    assert (
        registry.get_sample_value(
            "streamboost_admission_wait_seconds_count", {"route": "*", "result": "abandoned"}
        )
        == 1
    )


async def test_route_limits_and_503() -> None:
    server, counts, registry = serve(
        AdmissionConfig(
            limit=10,
            route_limits={"/slow/{n}": 1},
            max_queue=0,
            status=503,
            retry_after=7,
            exempt=exempt_state,
        )
    )
    with server as base:
        async with client(base) as http:
            slow = other = asyncio.ensure_future(http.get("/slow/1"))
            try:
                await until(lambda: _is(counts.running == 1), "one slow runs")
                busy = await http.get("/slow/2")  # same template, no queue: rejected
                other = asyncio.ensure_future(http.get("/stream"))  # another route runs
                await until(lambda: _is(counts.running == 2), "the other route runs")
            finally:
                await release(counts, [slow, other])
            done = [slow.result(), other.result()]
    assert busy.status_code == 503 and busy.headers["retry-after"] == "7"
    assert reason(busy) == "queue_full"
    rejected = "streamboost_admission_rejected_total"
    by_route = {"route": "/slow/{n}", "reason": "queue_full"}
    assert registry.get_sample_value(rejected, by_route) == 1
    assert registry.get_sample_value(rejected, {"route": "*", "reason": "queue_full"}) == 0
    assert [r.status_code for r in done] == [200, 200]


async def test_exempt_requests_and_metrics_skip_admission() -> None:
    server, counts, _ = serve(AdmissionConfig(limit=1, max_queue=0, exempt=exempt_state))
    with server as base:
        async with client(base) as http:
            held = asyncio.ensure_future(http.get("/stream"))
            try:
                await until(lambda: _is(counts.running == 1), "the limit is reached")
                assert (await http.get("/state")).status_code == 200
                assert (await http.get("/metrics")).status_code == 200
                assert (await http.get("/stream")).status_code == 429
            finally:
                await release(counts, [held])
            assert held.result().status_code == 200


def test_off_by_default() -> None:
    boost = StreamBoost(lambda scope, receive, send: None, registry=CollectorRegistry(), otel=False)  # type: ignore[arg-type,return-value]
    assert boost.admission is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "limit=0 must be an int >= 1"),
        ({"limit": 2, "max_queue": -1}, "max_queue=-1 must be >= 0"),
        ({"limit": 2, "max_wait": 0}, "max_wait=0 must be > 0 seconds"),
        ({"limit": 2, "status": 500}, "status=500 must be 429 or 503"),
        ({"limit": 2, "retry_after": 1.5}, "retry_after=1.5 must be whole seconds"),
        ({"limit": 2, "route_limits": {"chat": 1}}, "route template starting with '/'"),
        ({"limit": 2, "route_limits": {"/a": 0}}, "route_limits['/a']=0 must be an int >= 1"),
        ({"limit": 2, "priority": 3}, "priority=3 must be a function of the scope"),
        ({"limit": 2, "route_limits": {"/a/{x:nope}": 1}}, "unknown converter 'nope'"),
    ],
)
def test_config_errors_name_the_value_and_the_fix(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=_escape(message)):
        AdmissionConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "http://x"}, "must be a Redis URL"),
        ({"limit": 0}, "limit=0 must be an int >= 1"),
        ({"lease": 0.01}, "lease=0.01 must be >= 0.1 seconds"),
        ({"lease": 1.0, "poll_interval": 0.5}, "poll_interval=0.5 must be > 0 and <= lease / 3"),
        ({"lease": 1.0, "timeout": 0.5}, "timeout=0.5 must be > 0 and < lease / 3"),
        ({"on_error": "ignore"}, "on_error='ignore' must be 'admit' or 'reject'"),
    ],
)
def test_shared_limit_errors(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"url": "redis://127.0.0.1:6379/0", "limit": 4, **kwargs}
    with pytest.raises(ValueError, match=_escape(message)):
        SharedLimit(**args)


def test_shared_limit_repr_hides_the_password() -> None:
    shared = SharedLimit(url="redis://user:secret@127.0.0.1:6379/0", limit=2)
    assert "secret" not in repr(shared)
    with pytest.raises(ValueError) as info:
        SharedLimit(url="http://user:secret@host", limit=2)
    assert "secret" not in str(info.value)


def test_config_is_frozen_and_route_limits_copied() -> None:
    limits = {"/a": 1}
    config = AdmissionConfig(limit=2, route_limits=limits)
    limits["/b"] = 2
    assert dict(config.route_limits or {}) == {"/a": 1}
    with pytest.raises(AttributeError):
        config.limit = 3  # type: ignore[misc]
    with pytest.raises(TypeError, match="admission="):
        StreamBoost(lambda s, r, w: None, admission={"limit": 1}, registry=CollectorRegistry())  # type: ignore[arg-type,return-value]


def _escape(text: str) -> str:
    import re

    return re.escape(text)


def test_route_templates_match_before_routing() -> None:
    from streamboost._admission._routes import RouteMatcher

    matcher = RouteMatcher(["/v1/chat/completions", "/items/{id:int}", "/files/{rest:path}"])
    assert matcher.match({"path": "/v1/chat/completions"}) == "/v1/chat/completions"
    assert matcher.match({"path": "/api/v1/chat/completions", "root_path": "/api"}) == (
        "/v1/chat/completions"
    )
    assert matcher.match({"path": "/items/12"}) == "/items/{id:int}"
    assert matcher.match({"path": "/items/x"}) is None
    assert matcher.match({"path": "/files/a/b.txt"}) == "/files/{rest:path}"
    with pytest.raises(ValueError, match="unknown converter 'nope'"):
        RouteMatcher(["/x/{a:nope}"])


def test_under_trio_the_local_limits_hold_without_a_queue() -> None:
    from tests.test_trio import hypercorn_trio

    counts, registry = LocalCounts(), CollectorRegistry()
    app = hold_app(AdmissionConfig(limit=1, max_queue=10, exempt=exempt_state), counts, registry)

    async def run(base: str) -> tuple[httpx.Response, httpx.Response]:
        async with client(base) as http:
            held = asyncio.ensure_future(http.get("/stream"))
            try:
                await until(lambda: _is(counts.running == 1), "the limit is reached")
                busy = await http.get("/stream")  # no queue under trio: rejected at once
            finally:
                await release(counts, [held])
            return held.result(), busy

    with hypercorn_trio(app) as base:
        held, busy = asyncio.run(run(base))
    assert held.status_code == 200 and held.content == BODY
    assert busy.status_code == 429 and reason(busy) == "queue_full"
    assert busy.headers["retry-after"] == "1"


def test_the_admission_families_are_the_spec_s() -> None:
    from streamboost._admission._metrics import FAMILIES

    registry = CollectorRegistry()
    boost = StreamBoost(
        lambda s, r, w: None,  # type: ignore[arg-type,return-value]
        admission=AdmissionConfig(limit=2, route_limits={"/chat": 1}),
        registry=registry,
        otel=False,
    )
    assert boost.admission is not None
    exported = {(m.name, m.documentation, m.type) for m in registry.collect()}
    want = {(f.name, f.help, f.kind) for f in FAMILIES}
    assert want <= exported
    depth = {
        labels["route"]: value
        for m in registry.collect()
        if m.name == "streamboost_admission_queue_depth"
        for _name, labels, value, *_ in m.samples
    }
    assert depth == {"/chat": 0, "*": 0}  # every route label exported from the start
