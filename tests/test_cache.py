"""The memory cache, keys, the decorator's contract, metrics and FastAPI dependencies."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
import uuid
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Cookie, Depends, FastAPI, Header, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry, generate_latest

from streamboost import Cache, CacheValueTooLarge, UnsafeCacheKey, cached
from streamboost._cli._loopback import uvicorn_in_thread


def memory(**options: Any) -> Cache:
    return Cache("memory://", registry=CollectorRegistry(), **options)


@dataclasses.dataclass
class Profile:
    user_id: str
    name: str


async def test_hit_after_miss_and_none_is_cached() -> None:
    cache = memory(name="t")
    calls: list[str] = []

    @cached(ttl=60, cache=cache)
    async def find(user_id: str) -> Profile | None:
        calls.append(user_id)
        return None if user_id == "ghost" else Profile(user_id, f"name {user_id}")

    assert await find("a") == Profile("a", "name a")
    assert await find("a") == Profile("a", "name a")
    assert await find("ghost") is None
    assert await find("ghost") is None
    assert calls == ["a", "ghost"]
    assert (cache.stats.hits, cache.stats.misses) == (2, 2)


async def test_keys_are_canonical_and_collision_proof() -> None:
    cache = memory()
    calls: list[tuple[Any, ...]] = []

    @cached(ttl=60, cache=cache)
    async def pair(a: Any, b: Any = "x") -> str:
        calls.append((a, b) if a == a else ("nan", b))  # NaN != NaN: record it by name
        return f"{a!r}|{b!r}"

    assert await pair("a:b", "c") != await pair("a", "b:c")
    assert await pair(1) == await pair(a=1) == await pair(1, "x") == await pair(b="x", a=1)
    await pair(True)
    await pair(1.0)
    await pair("1")
    await pair({"k": 1, "j": 2})
    await pair({"j": 2, "k": 1})  # same mapping, other order: same key
    await pair(None, None)  # the fast path (every argument given): orjson writes NaN as null
    await pair(float("nan"), None)
    await pair(float("nan"), None)
    assert calls == [
        ("a:b", "c"),
        ("a", "b:c"),
        (1, "x"),
        (True, "x"),
        (1.0, "x"),
        ("1", "x"),
        ({"k": 1, "j": 2}, "x"),
        (None, None),
        ("nan", None),
    ]


async def test_key_by_selected_parameters_or_callable() -> None:
    cache = memory()

    @cached(ttl=60, cache=cache, key=("user_id",))
    async def by_name(user_id: str, db: object) -> str:
        return f"{user_id}@{id(db)}"

    first = await by_name("u", object())
    assert await by_name("u", object()) == first

    @cached(ttl=60, cache=cache, key=lambda user_id, lang: user_id.lower())
    async def by_func(user_id: str, lang: str) -> str:
        return f"{user_id}/{lang}"

    assert await by_func("U", "en") == await by_func("u", "fr") == "U/en"
    with pytest.raises(TypeError, match="not parameters"):
        cached(key=("nope",))(by_name.__wrapped__)  # type: ignore[attr-defined]


async def test_lru_bound_and_ttl_expiry() -> None:
    cache = memory(max_entries=2)
    calls: list[int] = []

    @cached(ttl=3600, cache=cache)  # no expiry while the LRU order is checked
    async def square(n: int) -> int:
        calls.append(n)
        return n * n

    for n in (1, 2, 1, 3):  # 3 evicts 2, the least recently used
        await square(n)
    await square(1)
    await square(2)
    assert calls == [1, 2, 3, 2] and len(cache.entries) == 2

    @cached(ttl=0.05, cache=memory())
    async def short(n: int) -> int:
        calls.append(-n)
        return n

    await short(1)
    await asyncio.sleep(0.1)  # a lower bound: the entry has expired whatever the load
    await short(1)
    assert calls[-2:] == [-1, -1]


async def test_keys_carry_the_function_identity_and_version() -> None:
    cache = memory()
    loads: list[str] = []

    async def profile(user_id: str) -> str:
        loads.append("profile")
        return f"profile of {user_id}"

    async def history(user_id: str) -> str:
        loads.append("history")
        return f"history of {user_id}"

    v1 = cached(ttl=60, cache=cache, version=1)(profile)
    v2 = cached(ttl=60, cache=cache, version=2)(profile)  # e.g. the return type changed
    other = cached(ttl=60, cache=cache)(history)
    assert await v1("u") == await v2("u") == "profile of u"
    assert await other("u") == "history of u"  # same arguments, another function
    assert await v1("u") == "profile of u"
    assert loads == ["profile", "profile", "history"]
    assert len(cache.entries) == 3


async def test_single_flight_runs_one_load_for_1000_concurrent_misses() -> None:
    cache = memory()
    loads = 0
    gate = asyncio.Event()

    @cached(ttl=60, cache=cache)
    async def slow(n: int) -> list[int]:
        nonlocal loads
        loads += 1
        await gate.wait()
        return [n]

    calls = [asyncio.ensure_future(slow(7)) for _ in range(1000)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*calls) == [[7]] * 1000
    assert loads == 1
    assert cache.stats.misses == 1000


async def test_loader_error_reaches_every_waiter_and_is_not_cached() -> None:
    cache = memory()
    loads = 0

    @cached(ttl=60, cache=cache)
    async def broken(n: int) -> int:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("backend down")

    results = await asyncio.gather(*(broken(1) for _ in range(10)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results) and loads == 1
    with pytest.raises(RuntimeError):
        await broken(1)
    assert loads == 2


async def test_cancelled_leader_hands_over_to_a_waiter() -> None:
    cache = memory()
    started: list[int] = []
    gate = asyncio.Event()  # no load finishes before the leader is cancelled

    @cached(ttl=60, cache=cache)
    async def load(n: int) -> int:
        started.append(n)
        await gate.wait()
        return n

    leader = asyncio.ensure_future(load(5))
    for _ in range(100):  # bounded: until the leader runs the loader
        if started:
            break
        await asyncio.sleep(0)
    follower = asyncio.ensure_future(load(5))
    await asyncio.sleep(0)  # the follower now waits on the leader's load
    leader.cancel()
    for _ in range(100):  # bounded: until the follower took over and runs the loader
        if len(started) == 2:
            break
        await asyncio.sleep(0)
    gate.set()
    assert await follower == 5
    assert leader.cancelled() and started == [5, 5]


async def test_stale_while_revalidate_serves_stale_and_refreshes_once() -> None:
    cache = memory()
    version = 0
    refreshed = asyncio.Event()

    @cached(ttl=0.05, stale_ttl=60, cache=cache)
    async def doc(name: str) -> str:
        nonlocal version
        version += 1
        if version > 1:
            refreshed.set()
        return f"{name} v{version}"

    assert await doc("a") == "a v1"
    await asyncio.sleep(0.1)
    assert await asyncio.gather(*(doc("a") for _ in range(20))) == ["a v1"] * 20
    async with asyncio.timeout(5):
        await refreshed.wait()
    await cache.wait_refreshes()
    assert await doc("a") == "a v2"
    assert version == 2 and cache.stats.stale == 20


async def test_xfetch_refreshes_before_expiry() -> None:
    cache = memory(xfetch_beta=1e9)  # a huge beta makes an early refresh all but certain
    loads = 0

    @cached(ttl=60, cache=cache)
    async def load(n: int) -> int:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.002)
        return loads

    assert await load(1) == 1
    assert await load(1) == 1  # served while the early refresh runs in the background
    await cache.wait_refreshes()
    assert loads == 2 and await load(1) >= 2

    never = memory(xfetch_beta=0)

    @cached(ttl=60, cache=never)
    async def steady(n: int) -> int:
        await asyncio.sleep(0.002)
        return n

    for _ in range(50):
        await steady(1)
    assert never.stats.misses == 1 and not never.refreshes


async def test_invalidate_by_arguments_tag_and_namespace() -> None:
    cache = memory()
    loads: list[str] = []

    @cached(ttl=60, cache=cache, tags=lambda user_id: [f"user:{user_id}"])
    async def profile(user_id: str) -> str:
        loads.append(f"p{user_id}")
        return user_id

    @cached(ttl=60, cache=cache, tags=("history",))
    async def history(user_id: str) -> list[str]:
        loads.append(f"h{user_id}")
        return [user_id]

    for user in ("a", "b"):
        await profile(user)
        await history(user)
    await profile.invalidate("a")
    await profile("a")
    await profile("b")
    assert loads[-1] == "pa"
    await cache.invalidate_tags("user:b")
    await profile("b")
    await history("a")
    assert loads[-1] == "pb"
    await cache.invalidate_tags("history")
    await history("a")
    await history("b")
    assert loads[-2:] == ["ha", "hb"]
    await cache.invalidate_namespace()
    await profile("a")
    assert loads[-1] == "pa" and len(cache.entries) == 1


async def test_value_size_cap_has_a_clear_error() -> None:
    cache = memory(max_value_bytes=100)

    @cached(ttl=60, cache=cache)
    async def big(n: int) -> str:
        return "x" * n

    assert await big(10) == "x" * 10
    with pytest.raises(CacheValueTooLarge, match=r"1002 bytes.*max_value_bytes=100"):
        await big(1000)


async def test_values_that_are_not_json_are_refused() -> None:
    @cached(ttl=60, cache=memory())
    async def opaque(n: int) -> object:
        return object()

    with pytest.raises(TypeError, match="cannot cache a value of type object"):
        await opaque(1)


async def test_get_many_and_warm_up_with_bounded_concurrency() -> None:
    cache = memory()
    running = peak = 0

    @cached(ttl=60, cache=cache)
    async def load(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.005)
        running -= 1
        return n * 10

    assert await cache.warm((load.bind(n) for n in range(20)), concurrency=3) == 20
    assert peak == 3
    assert await cache.get_many(load.bind(1), load.bind(2), load.bind(99)) == [10, 20, 990]
    assert cache.stats.misses == 21


def test_decoration_refuses_bad_options_and_sync_functions() -> None:
    with pytest.raises(ValueError, match=r"ttl=0 must be > 0"):
        cached(ttl=0)
    with pytest.raises(TypeError, match="async def"):
        cached(ttl=1)(lambda: 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="memory://"):
        Cache("mongodb://x")
    with pytest.raises(ValueError, match="tiered=True needs a Redis url"):
        Cache("memory://", tiered=True)


def test_circuit_breaker_skips_while_open_then_lets_one_probe() -> None:
    from streamboost._cache._breaker import CircuitBreaker

    breaker = CircuitBreaker(threshold=2, recovery=0.05)
    breaker.failure()
    assert breaker.allow() and breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open" and breaker.opened == 1
    assert [breaker.allow() for _ in range(3)] == [False] * 3  # skipped: no call to Redis
    time.sleep(0.1)  # past recovery (a lower bound only)
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.failure()  # the probe failed: open again
    assert not breaker.allow() and breaker.opened == 2
    time.sleep(0.1)
    assert breaker.allow()
    breaker.success()  # the probe succeeded: closed
    assert breaker.state == "closed" and all(breaker.allow() for _ in range(3))


bearer = HTTPBearer()


async def _request(request: Request) -> str:
    return ""


async def _websocket(ws: WebSocket) -> str:
    return ""


async def _credentials(creds: HTTPAuthorizationCredentials = Depends(bearer)) -> str:  # noqa: B008
    return ""


async def _header(authorization: str = Header()) -> str:
    return ""


async def _annotated_cookie(session: Annotated[str, Cookie()]) -> str:
    return ""


async def _security_dependency(token: Annotated[Any, Depends(bearer)]) -> str:
    return ""


@pytest.mark.parametrize(
    "func", [_request, _websocket, _credentials, _header, _annotated_cookie, _security_dependency]
)
def test_per_request_parameters_are_refused(func: Any) -> None:
    with pytest.raises(UnsafeCacheKey, match=r"Key by user instead.*current_user_id"):
        cached(ttl=60, cache=memory())(func)


def test_fastapi_dependency_keeps_signature_and_keys_by_user() -> None:
    cache = memory()
    loads: list[str] = []

    async def current_user_id(x_user: str = Header()) -> str:
        return x_user

    @cached(ttl=60, cache=cache)
    async def load_profile(user_id: str = Depends(current_user_id)) -> dict[str, str]:
        loads.append(user_id)
        return {"user": user_id}

    app = FastAPI()

    @app.get("/me")
    async def me(profile: dict[str, str] = Depends(load_profile)) -> dict[str, str]:  # noqa: B008
        return profile

    with uvicorn_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(3):
            for user in ("alice", "bob"):
                response = client.get("/me", headers={"x-user": user})
                assert response.json() == {"user": user}
    assert loads == ["alice", "bob"]


def test_prometheus_and_otel_export() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    registry = CollectorRegistry()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    cache = Cache(registry=registry, meter_provider=provider, name="profiles")

    @cached(ttl=60, cache=cache)
    async def load(n: int) -> int:
        return n

    async def run() -> None:
        for n in (1, 1, 1, 2):
            await load(n)

    asyncio.run(run())
    text = generate_latest(registry).decode()
    assert 'streamboost_cache_requests_total{cache="profiles",result="hit"} 2.0' in text
    assert 'streamboost_cache_requests_total{cache="profiles",result="miss"} 2.0' in text
    assert 'streamboost_cache_load_duration_seconds_count{cache="profiles"} 2.0' in text
    data = reader.get_metrics_data()
    assert data is not None
    points = {
        (metric.name, tuple(sorted(point.attributes.items()))): point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        for point in metric.data.data_points
    }
    hit = points["streamboost.cache.requests", (("cache", "profiles"), ("result", "hit"))]
    assert hit.value == 2  # type: ignore[union-attr]
    duration = points["streamboost.cache.load.duration", (("cache", "profiles"),)]
    assert duration.count == 2  # type: ignore[union-attr]


def test_env_url_and_import_without_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMBOOST_CACHE_URL", "tiered+redis://127.0.0.1:6379/0")
    assert Cache(registry=CollectorRegistry()).backend == "tiered"
    monkeypatch.setenv("STREAMBOOST_CACHE_URL", "redis://127.0.0.1:6379/0")
    assert Cache.from_url(registry=CollectorRegistry()).backend == "redis"
    monkeypatch.delenv("STREAMBOOST_CACHE_URL")
    assert Cache.from_url(registry=CollectorRegistry()).backend == "memory"
    script = (
        "import sys; sys.modules['redis'] = None\n"
        "import asyncio, streamboost\n"
        "@streamboost.cached(ttl=5)\n"
        "async def f(x: int) -> int: return x + 1\n"
        "print(asyncio.run(f(1)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2"


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_example_app_boosted_mode_caches_profile_and_history(
    backend: str, request: pytest.FixtureRequest
) -> None:
    from examples.chat.app import backend_of, create_app
    from examples.chat.settings import ChatSettings, Latencies

    from streamboost._deferred import _defer

    url = "memory://" if backend == "memory" else request.getfixturevalue("redis_url")
    namespace = f"sbtest:cache:{uuid.uuid4().hex[:12]}"
    cache = Cache(url, namespace=namespace, registry=CollectorRegistry(), timeout=5.0)
    fast = Latencies(0.001, 0.001, 0.001, 0.001, 0.001)
    settings = ChatSettings(
        mode="boosted", model_ttft=0.0, tokens_per_second=1000, max_tokens=3, latencies=fast
    )
    app = create_app(settings, cache=cache, registry=CollectorRegistry())
    chat = backend_of(app)
    try:
        with uvicorn_in_thread(app) as base, httpx.Client(base_url=base, timeout=10) as client:
            for turn, user in enumerate(("a", "b", "a", "b", "a"), start=1):
                body = {"user_id": user, "session_id": f"s-{user}", "message": f"turn {turn}"}
                response = client.post("/chat/stream", json=body)
                assert response.status_code == 200
                assert response.text.endswith("data: [DONE]\n\n")
                # Bounded: until this turn's deferred saves (and their invalidations) ran.
                for _ in range(1000):
                    if len(chat.saved) == 2 * turn and not _defer._deferrer.queue_depth():
                        break
                    time.sleep(0.005)
                assert len(chat.saved) == 2 * turn
            # Each save reloaded its session's history into the cache (two saves a turn, off
            # the request path), so every later turn hit a current entry; the profile stayed
            # cached. Loads: 2 first-turn misses + 2 refreshes per turn.
            assert chat.calls["load_profile"] == 2
            assert chat.calls["load_history"] == 2 + 2 * 5
            assert cache.stats.hits == 6 and cache.stats.misses == 4
    finally:
        if backend == "redis":
            import redis

            client = redis.Redis.from_url(url)
            for key in client.scan_iter(match=f"{namespace}:*"):
                client.delete(key)
            client.close()
