"""Cached calls: streamboost vs cashews vs aiocache, side by side in one run.

    uv run python benchmarks/bench_cache.py [--redis redis://127.0.0.1:6379/0]

Prints per-call times (median of several rounds) and ratios; never asserts. Redis keys live
under ``sbtest:cache:bench:<random>`` and are deleted at the end (SCAN, never KEYS).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from aiocache import Cache as AioCache
from aiocache import cached as aio_cached
from cashews import Cache as Cashews
from prometheus_client import CollectorRegistry

from streamboost import Cache, cached

ROUNDS = 5


async def per_call(call: Callable[[], Awaitable[Any]], n: int) -> float:
    """Median seconds per awaited call over ROUNDS rounds of ``n`` calls."""
    await call()
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(n):
            await call()
        samples.append((time.perf_counter() - start) / n)
    return statistics.median(samples)


def row(label: str, seconds: float, baseline: float | None = None, note: str = "") -> None:
    ratio = f"{seconds / baseline:7.2f}x" if baseline else " " * 8
    print(f"  {label:<44} {seconds * 1e6:9.2f} µs  {ratio}  {note}")


async def memory_hit() -> float:
    print("decorated memory hit (same key, warm)")
    n = 50_000
    ours = Cache("memory://", registry=CollectorRegistry())

    @cached(ttl=300, cache=ours)
    async def sb(user_id: str) -> dict[str, str]:
        return {"user": user_id}

    cashews = Cashews()
    cashews.setup("mem://")

    @cashews(ttl=300)
    async def cw(user_id: str) -> dict[str, str]:
        return {"user": user_id}

    @aio_cached(ttl=300)
    async def ac(user_id: str) -> dict[str, str]:
        return {"user": user_id}

    async def bare(user_id: str) -> dict[str, str]:
        return {"user": user_id}

    t_bare = await per_call(lambda: bare("u1"), n)
    t_sb = await per_call(lambda: sb("u1"), n)
    t_cw = await per_call(lambda: cw("u1"), n // 5)
    t_ac = await per_call(lambda: ac("u1"), n // 5)
    row("bare async function (no cache)", t_bare)
    row("streamboost @cached (memory://)", t_sb, t_sb, "target <= 2 µs")
    row("cashews @cache (mem://, default)", t_cw, t_sb, f"streamboost {t_cw / t_sb:.1f}x faster")
    row(
        "aiocache @cached (SimpleMemoryCache)", t_ac, t_sb, f"streamboost {t_ac / t_sb:.1f}x faster"
    )
    return t_sb


async def redis_hit(url: str, ns: str) -> None:
    print("Redis hit (same key, warm; loopback Redis)")
    n = 2_000
    raw = aioredis.Redis.from_url(url)
    await raw.set(f"{ns}:raw", b'{"user":"u1"}')
    ours = Cache(url, namespace=f"{ns}:sb", registry=CollectorRegistry())

    @cached(ttl=300, cache=ours)
    async def sb(user_id: str) -> dict[str, str]:
        return {"user": user_id}

    cashews = Cashews()
    cashews.setup(url)

    @cashews(ttl=300, key=f"{ns}:cw:{{user_id}}")
    async def cw(user_id: str) -> dict[str, str]:
        return {"user": user_id}

    @aio_cached(ttl=300, cache=AioCache.REDIS, endpoint="127.0.0.1", namespace=f"{ns}:ac")
    async def ac(user_id: str) -> dict[str, str]:
        return {"user": user_id}

    t_raw = await per_call(lambda: raw.get(f"{ns}:raw"), n)
    t_sb = await per_call(lambda: sb("u1"), n)
    t_cw = await per_call(lambda: cw("u1"), n)
    t_ac = await per_call(lambda: ac("u1"), n)
    row("raw redis.asyncio GET", t_raw, t_raw)
    row("streamboost @cached (redis://)", t_sb, t_raw, "target <= 1.2x raw GET")
    row("cashews @cache (redis://)", t_cw, t_raw)
    row("aiocache @cached (RedisCache)", t_ac, t_raw)

    print("two cached values in one round trip (profile + history, both warm in Redis)")

    @cached(ttl=300, cache=ours)
    async def history(session_id: str) -> list[str]:
        return [session_id]

    await history("s1")
    await raw.set(f"{ns}:raw2", b'["s1"]')
    t_mget = await per_call(lambda: raw.mget(f"{ns}:raw", f"{ns}:raw2"), n)
    t_two = await per_call(lambda: ours.get_many(sb.bind("u1"), history.bind("s1")), n)
    t_seq = await per_call(_sequential(sb, history), n)
    row("raw redis.asyncio MGET of 2 keys", t_mget, t_mget)
    row("streamboost cache.get_many(profile, history)", t_two, t_mget, "one MGET")
    row("streamboost: two awaited calls, one by one", t_seq, t_mget, "two GETs")
    await ours.aclose()
    await raw.aclose()


def _sequential(a: Any, b: Any) -> Callable[[], Awaitable[Any]]:
    async def both() -> tuple[Any, Any]:
        return await a("u1"), await b("s1")

    return both


async def stampede(url: str, ns: str) -> None:
    print("loader calls under a 1000-way stampede on a cold key (target: 1)")
    counts: dict[str, int] = {}

    def loader(label: str) -> Callable[[str], Awaitable[dict[str, str]]]:
        async def load(user_id: str) -> dict[str, str]:
            counts[label] = counts.get(label, 0) + 1
            await asyncio.sleep(0.02)
            return {"user": user_id}

        load.__qualname__ = "load_" + "".join(c if c.isalnum() else "_" for c in label)
        return load

    cashews_mem, cashews_redis = Cashews(), Cashews()
    cashews_mem.setup("mem://")
    cashews_redis.setup(url)
    sb_redis = Cache(url, namespace=f"{ns}:st", registry=CollectorRegistry())
    contenders: dict[str, Callable[[str], Awaitable[Any]]] = {
        "streamboost memory://": cached(ttl=60, cache=Cache(registry=CollectorRegistry()))(
            loader("streamboost memory://")
        ),
        "streamboost redis://": cached(ttl=60, cache=sb_redis)(loader("streamboost redis://")),
        "cashews mem://": cashews_mem(ttl=60)(loader("cashews mem://")),
        "cashews redis://": cashews_redis(ttl=60, key=f"{ns}:cws:{{user_id}}")(
            loader("cashews redis://")
        ),
        "aiocache memory": aio_cached(ttl=60)(loader("aiocache memory")),
    }
    for label, func in contenders.items():
        await asyncio.gather(*(func("cold") for _ in range(1000)))
        print(f"  {label:<44} {counts.get(label, 0):6d} loader calls")
    await sb_redis.aclose()


async def cleanup(url: str, ns: str) -> None:
    client = aioredis.Redis.from_url(url)
    keys = [k async for k in client.scan_iter(match=f"{ns}*", count=1000)]
    keys += [k async for k in client.scan_iter(match=f"*{ns}*", count=1000)]
    if keys:
        await client.delete(*set(keys))
    await client.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    url = parser.parse_args().redis
    ns = f"sbtest:cache:bench:{uuid.uuid4().hex[:8]}"
    print("streamboost cache benchmark (shared, noisy 2-core machine: compare ratios)")
    await memory_hit()
    try:
        await redis_hit(url, ns)
        await stampede(url, ns)
    finally:
        await cleanup(url, ns)


if __name__ == "__main__":
    asyncio.run(main())
