"""The shared admission limit on real Redis: the semaphore's scripts, two uvicorn processes
sharing one limit, a SIGKILLed holder whose leases expire, and Redis being unreachable.

Every test works under its own key prefix (``sbtest:adm:<random>``) and deletes it. Without
Redis these tests skip, or fail when ``STREAMBOOST_REQUIRE_SERVICES=1`` (``redis_url``).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from tests.needs import free_port, scratch_prefix

from admission_apps import EVENTS, LocalCounts, exempt_state, hold_app
from metrics_apps import server_process
from streamboost import AdmissionConfig, SharedLimit
from streamboost._admission._redis import RedisSemaphore
from streamboost._cli._loopback import uvicorn_in_thread

BODY = b"".join(b'data: {"i": %d}\n\n' % i for i in range(EVENTS))
APP = "tests.admission_apps:redis_app"


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    async with scratch_prefix(redis_url, "sbtest:adm:{}") as name:
        yield name


async def until(check: Callable[[], Awaitable[bool]], what: str, tries: int = 1500) -> None:
    for _ in range(tries):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never: {what}")


async def redis_ms(client: Any) -> int:
    seconds, micros = await client.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_semaphore_scripts(redis_url: str, prefix: str) -> None:
    key = prefix + ":sem"
    a = RedisSemaphore(SharedLimit(url=redis_url, limit=3, key=key, lease=5.0))
    short = RedisSemaphore(
        SharedLimit(url=redis_url, limit=3, key=key, lease=0.3, poll_interval=0.05, timeout=0.05)
    )
    client: Any = aioredis.Redis.from_url(redis_url)
    try:
        assert await a.acquire(["a1", "a2"]) == 2
        assert await short.acquire(["s1", "s2"]) == 1  # the first in order gets the last place
        assert await a.acquire(["a3"]) == 0
        assert await client.zcard(key) == 3
        assert 0 < await client.pttl(key) <= 5000  # the set itself goes when nobody writes
        await a.release(["a2"])
        assert await a.acquire(["a3"]) == 1
        # Renewal keeps a place; one removed behind its back is re-added while there is room.
        await client.zrem(key, "a1")
        assert await a.renew(["a1", "a3"]) == []
        assert await client.zscore(key, "a1") is not None
        # s1 is never renewed: its place expires within its lease, and the next acquire
        # removes it and takes it.
        score = await client.zscore(key, "s1")
        assert score <= await redis_ms(client) + 300

        async def taken() -> bool:
            return await a.acquire(["a4"]) == 1

        await until(taken, "the unrenewed lease expired")
        assert await client.zscore(key, "s1") is None
        # Full: a lease that expired cannot come back through a renewal.
        await client.zrem(key, "a4")
        await client.zadd(key, {"other": (await redis_ms(client)) + 60_000})
        assert await a.renew(["a1", "a3", "a4"]) == ["a4"]
    finally:
        await a.aclose()
        await short.aclose()
        await client.aclose()


def _env(redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return {"ADM_REDIS_URL": redis_url, "ADM_PREFIX": prefix, **extra}


def _command(port: int) -> list[str]:
    return ["uvicorn", "--factory", APP, "--port", str(port), "--log-level", "warning"]


async def _state(http: httpx.AsyncClient, base: str) -> dict[str, Any]:
    result: dict[str, Any] = (await http.get(base + "/state")).json()
    return result


async def test_the_limit_holds_across_two_processes(redis_url: str, prefix: str) -> None:
    limit, clients = 3, 9
    env = _env(redis_url, prefix, ADM_SHARED_LIMIT=str(limit), ADM_MAX_QUEUE="2")
    ports = [free_port(), free_port()]
    client: Any = aioredis.Redis.from_url(redis_url)
    with (
        server_process(_command(ports[0]), ports[0], env) as one,
        server_process(_command(ports[1]), ports[1], env) as two,
    ):
        bases = [one, two]
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            pids = {(await _state(http, base))["pid"] for base in bases}
            assert len(pids) == 2
            tasks = [
                asyncio.ensure_future(http.get(bases[i % 2] + "/stream")) for i in range(clients)
            ]

            async def settled() -> bool:
                running = int(await client.get(prefix + ":running") or 0)
                waiting = sum([(await _state(http, base))["waiting"] for base in bases])
                answered = sum(t.done() for t in tasks)
                return running == limit and answered == clients - limit - waiting

            try:
                await until(settled, "the shared limit running, the rest queued or answered")
                rejected = [t.result() for t in tasks if t.done()]
                assert await client.zcard(prefix + ":sem") == limit
            finally:
                await client.set(prefix + ":open", 1)
                await asyncio.gather(*tasks, return_exceptions=True)
            responses = [t.result() for t in tasks]
            states = [await _state(http, base) for base in bases]
        peak = int(await client.get(prefix + ":peak") or 0)

        async def released() -> bool:
            return bool(await client.zcard(prefix + ":sem") == 0)

        await until(released, "every lease released after the streams")
    await client.aclose()
    assert peak == limit  # never more than the shared limit ran, over both processes
    assert rejected and all(r.status_code == 429 for r in rejected)
    assert all(r.headers["retry-after"] == "1" for r in rejected)
    assert {orjson.loads(r.content)["error"]["code"] for r in rejected} == {"queue_full"}
    accepted = [r for r in responses if r.status_code == 200]
    assert len(accepted) + len(rejected) == clients
    assert all(r.content == BODY for r in accepted)
    assert sum(s["rejected"]["queue_full"] for s in states) == len(rejected)
    assert all(s["errors"] == 0 for s in states)


async def test_a_sigkilled_holder_frees_its_leases_within_the_lease(
    redis_url: str, prefix: str
) -> None:
    lease_ms = 1000
    env = _env(redis_url, prefix, ADM_SHARED_LIMIT="2", ADM_LEASE=str(lease_ms / 1000))
    ports = [free_port(), free_port()]
    client: Any = aioredis.Redis.from_url(redis_url)
    key = prefix + ":sem"
    with (
        server_process(_command(ports[0]), ports[0], env) as holder,
        server_process(_command(ports[1]), ports[1], env) as other,
    ):
        limits = httpx.Limits(max_connections=20, max_keepalive_connections=0)
        async with (
            httpx.AsyncClient(timeout=60, limits=limits) as http,
            httpx.AsyncClient(timeout=60, limits=limits) as doomed,
        ):
            pid = (await _state(http, holder))["pid"]
            held = [asyncio.ensure_future(doomed.get(holder + "/stream")) for _ in range(2)]
            waiter = held[0]
            try:

                async def full() -> bool:
                    return bool(await client.zcard(key) == 2)

                async def queued() -> bool:
                    return bool((await _state(http, other))["waiting"] == 1)

                await until(full, "the holder has both places")
                waiter = asyncio.ensure_future(http.get(other + "/stream"))
                await until(queued, "the other process waits for a place")
                dead = await client.zrange(key, 0, -1)
                os.kill(pid, signal.SIGKILL)
                killed_at = await redis_ms(client)
                scores = [await client.zscore(key, member) for member in dead]
                # Renewed at most lease ago: every place the dead process held expires by
                # killed_at + lease, and the next acquire removes it.
                assert all(score <= killed_at + lease_ms for score in scores)
                await client.set(prefix + ":open", 1)
                response = await waiter
            finally:
                await client.set(prefix + ":open", 1)
                await asyncio.gather(waiter, *held, return_exceptions=True)
    remaining = {m for m in await client.zrange(key, 0, -1)}
    await client.aclose()
    assert response.status_code == 200 and response.content == BODY
    assert not remaining & set(dead)  # the dead holder's leases are gone
    assert all(isinstance(t.exception(), httpx.TransportError) for t in held)


@pytest.mark.parametrize(("on_error", "status"), [("reject", 503), ("admit", 200)])
async def test_unreachable_redis(on_error: Literal["admit", "reject"], status: int) -> None:
    shared = SharedLimit(
        url=f"redis://127.0.0.1:{free_port()}/0",
        limit=1,
        on_error=on_error,
        timeout=0.2,
    )
    counts, registry = LocalCounts(), CollectorRegistry()
    counts.open = True
    app = hold_app(AdmissionConfig(limit=2, shared=shared, exempt=exempt_state), counts, registry)
    with uvicorn_in_thread(app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            response = await http.get("/stream")
            state = (await http.get("/state")).json()
    assert response.status_code == status
    assert state["errors"] >= 1 and state["active"] == 0
    if status == 503:
        assert response.headers["retry-after"] == "1"
        assert orjson.loads(response.content)["error"]["code"] == "unavailable"
        assert (
            registry.get_sample_value(
                "streamboost_admission_rejected_total", {"route": "*", "reason": "unavailable"}
            )
            == 1
        )
    else:
        assert response.content == BODY


def _metric(text: str, name: str, *labels: str) -> float:
    """The sum of ``name``'s samples whose labels contain every one of ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, _, value = line.rpartition(" ")
            if all(label in head for label in labels):
                total += float(value)
    return total


async def test_two_workers_of_one_server_in_multiprocess_mode(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """``uvicorn --workers 2``: the shared limit holds, and the admission families add up
    over both workers' file-backed values."""
    limit, clients = 3, 9
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = _env(redis_url, prefix, ADM_SHARED_LIMIT=str(limit), ADM_MAX_QUEUE="2")
    env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    port = free_port()
    client: Any = aioredis.Redis.from_url(redis_url)
    with server_process([*_command(port), "--workers", "2"], port, env) as base:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
            tasks = [asyncio.ensure_future(http.get("/stream")) for _ in range(clients)]
            seen: list[tuple[int, float, int]] = []

            async def settled() -> bool:
                running = int(await client.get(prefix + ":running") or 0)
                text = (await http.get("/metrics")).text
                waiting = _metric(text, "streamboost_admission_queue_depth")
                answered = sum(t.done() for t in tasks)
                seen.append((running, waiting, answered))
                return running == limit and answered == clients - limit - waiting

            try:
                try:
                    await until(settled, "the limit running, the rest queued or answered")
                except AssertionError as exc:
                    last = seen[-3:]
                    raise AssertionError(
                        f"{exc}; last (running, queued, answered): {last}"
                    ) from None
                rejected = [t.result() for t in tasks if t.done()]
            finally:
                await client.set(prefix + ":open", 1)
                await asyncio.gather(*tasks, return_exceptions=True)
            accepted = [t.result() for t in tasks if t.result().status_code == 200]

            async def counted() -> bool:
                text = (await http.get("/metrics")).text
                admitted = 'result="admitted"'
                return (
                    _metric(text, "streamboost_admission_rejected_total", 'reason="queue_full"')
                    == len(rejected)
                    and _metric(text, "streamboost_admission_wait_seconds_count", admitted)
                    == len(accepted)
                    and _metric(text, "streamboost_admission_active") == 0
                )

            await until(counted, "both workers' admissions on file")
    peak = int(await client.get(prefix + ":peak") or 0)
    await client.aclose()
    assert peak == limit
    assert rejected and all(r.status_code == 429 for r in rejected)
    assert all(r.headers["retry-after"] == "1" for r in rejected)
    assert len(accepted) + len(rejected) == clients
    assert all(r.content == BODY for r in accepted)


async def test_a_stream_longer_than_its_lease_keeps_its_place(redis_url: str, prefix: str) -> None:
    """The keeper renews: past two leases of Redis time the first stream still holds the one
    place, and the next request still waits for it."""
    key, lease_ms = prefix + ":sem", 600
    shared = SharedLimit(url=redis_url, limit=1, key=key, lease=lease_ms / 1000, timeout=0.1)
    counts, registry = LocalCounts(), CollectorRegistry()
    app = hold_app(
        AdmissionConfig(limit=10, max_wait=60, shared=shared, exempt=exempt_state),
        counts,
        registry,
    )
    client: Any = aioredis.Redis.from_url(redis_url)
    with uvicorn_in_thread(app) as base:
        limits = httpx.Limits(max_connections=10, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
            first = second = asyncio.ensure_future(http.get("/stream"))
            try:

                async def running() -> bool:
                    return counts.running == 1

                await until(running, "the first stream holds the place")
                second = asyncio.ensure_future(http.get("/stream"))

                async def queued() -> bool:
                    return bool((await _state(http, base))["waiting"] == 1)

                await until(queued, "the second waits")
                start = await redis_ms(client)

                async def two_leases_later() -> bool:
                    return await redis_ms(client) >= start + 2 * lease_ms

                await until(two_leases_later, "Redis' clock passed two leases")
                members = await client.zrange(key, 0, -1)
                state = await _state(http, base)
            finally:
                counts.open = True
                await asyncio.gather(first, second, return_exceptions=True)
    await client.aclose()
    assert len(members) == 1  # still held, by the first stream: renewed, not expired
    assert state["waiting"] == 1 and counts.peak == 1
    assert [first.result().status_code, second.result().status_code] == [200, 200]
