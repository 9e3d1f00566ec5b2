"""Deferred writes: request-path cost, batched vs per-item PostgreSQL inserts, chat TTFT.

    PYTHONPATH=. uv run python benchmarks/bench_deferred.py

Needs PostgreSQL (STREAMBOOST_BENCH_PG, default postgresql://postgres@127.0.0.1:5432/test) and
Redis (STREAMBOOST_BENCH_REDIS, default redis://127.0.0.1:6379/0) for some rows; those rows are
skipped when the service is down. Prints a table; never asserts. Numbers from a shared, noisy
machine are indicative only.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import tempfile
import time
from dataclasses import replace
from typing import Any

import httpx
from examples.chat.app import create_app
from examples.chat.settings import ChatSettings, Latencies
from examples.chat.store import ChatWrites, SQLiteStore
from prometheus_client import CollectorRegistry

from streamboost import DeferredWriter, Entry, defer, drain_deferred
from streamboost._cli._loopback import uvicorn_in_thread

PG = os.environ.get("STREAMBOOST_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("STREAMBOOST_BENCH_REDIS", "redis://127.0.0.1:6379/0")
rows: list[tuple[str, str]] = []


def report(name: str, value: str) -> None:
    rows.append((name, value))
    print(f"  {name:<58} {value}", flush=True)


async def noop(*_: Any) -> None:
    pass


async def bench_request_path() -> None:
    n = 100_000
    started = time.perf_counter()
    for i in range(n):
        defer(noop, i)
    per_defer = (time.perf_counter() - started) / n * 1e6
    await drain_deferred(60)
    tasks: set[asyncio.Task[None]] = set()
    started = time.perf_counter()
    for i in range(n):
        task = asyncio.create_task(noop(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    per_task = (time.perf_counter() - started) / n * 1e6
    await asyncio.gather(*tasks)
    report("defer(fn) on the request path (µs per call)", f"{per_defer:.2f}")
    report("  vs asyncio.create_task + kept reference (µs)", f"{per_task:.2f}")

    async with DeferredWriter(
        noop, name="bench_put", max_queue=n, registry=CollectorRegistry()
    ) as w:
        started = time.perf_counter()
        for i in range(n):
            await w.put(i)
        per_put = (time.perf_counter() - started) / n * 1e6
    report("DeferredWriter.put() in memory (µs per call)", f"{per_put:.2f}")

    try:
        stream = f"sbtest:deferred:bench:{secrets.token_hex(4)}"
        durable = DeferredWriter(
            noop, name="bench_durable", durable=REDIS, stream=stream, registry=CollectorRegistry()
        )
        async with durable:
            m = 2_000
            started = time.perf_counter()
            for i in range(m):
                await durable.put(i)
            one = (time.perf_counter() - started) / m * 1e6
            started = time.perf_counter()
            await asyncio.gather(*(durable.put(i) for i in range(m)))
            many = (time.perf_counter() - started) / m * 1e6
        from redis.asyncio import Redis

        redis = Redis.from_url(REDIS)
        await redis.delete(stream, f"{stream}:dead")
        await redis.aclose()
        report("put() durable, one at a time (µs, one XADD round trip)", f"{one:.1f}")
        report("put() durable, 2000 concurrent (µs per item, pipelined)", f"{many:.1f}")
    except OSError as exc:
        report("put() durable", f"skipped: Redis unavailable ({exc})")


async def bench_postgres() -> None:
    try:
        import asyncpg
    except ImportError:
        return
    table = f"sbtest_deferred_bench_{secrets.token_hex(4)}"
    try:
        pool = await asyncpg.create_pool(PG, min_size=1, max_size=4)
    except OSError as exc:
        report("PostgreSQL rows", f"skipped: PostgreSQL unavailable ({exc})")
        return
    await pool.execute(f"CREATE TABLE {table} (key text PRIMARY KEY, session_id text, body text)")
    try:
        single_n = 2_000
        started = time.perf_counter()
        async with pool.acquire() as conn:
            for i in range(single_n):
                await conn.execute(
                    f"INSERT INTO {table} VALUES ($1, $2, $3)", f"single-{i}", "s", "hello " * 8
                )
        single_rate = single_n / (time.perf_counter() - started)

        async def sink(entries: list[Entry[str]]) -> None:
            await pool.execute(
                f"INSERT INTO {table} SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) "
                "ON CONFLICT (key) DO NOTHING",
                [e.key for e in entries],
                ["s"] * len(entries),
                [e.item for e in entries],
            )

        batch_n = 50_000
        started = time.perf_counter()
        async with DeferredWriter(
            sink, name="bench_pg", max_batch=1000, max_delay=0.05, registry=CollectorRegistry()
        ) as writer:
            for _ in range(batch_n):
                await writer.put("hello " * 8)
        batch_rate = batch_n / (time.perf_counter() - started)
        report("PostgreSQL, one INSERT per item (items/s)", f"{single_rate:,.0f}")
        report("PostgreSQL, DeferredWriter batches of 1000 (items/s)", f"{batch_rate:,.0f}")
        report("  batched / per item", f"{batch_rate / single_rate:.1f}x")
    finally:
        await pool.execute(f"DROP TABLE IF EXISTS {table}")
        await pool.close()


def ttft(url: str, requests: int) -> list[float]:
    times = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(requests):
            started = time.perf_counter()
            body = {"user_id": f"u{i}", "session_id": f"s{i}", "message": "hi"}
            with client.stream("POST", "/chat/stream", json=body) as response:
                lines = response.iter_lines()
                for line in lines:
                    if '"content":"' in line and '"content":""' not in line:
                        times.append(time.perf_counter() - started)
                        break
                for _ in lines:  # read the rest, so the writes of the stream happen too
                    pass
    return times


def bench_chat(requests: int = 5) -> None:
    # Loads and retrieval take no time in both modes, so the difference is the writes alone
    # (create_session 150 ms + save_message 300 ms, inline in naive mode, deferred in boosted);
    # the boosted mode's parallel loads and cache would otherwise be counted as the writes'.
    only_writes = Latencies(load_profile=0.0, load_history=0.0, retrieval=0.0)
    base = ChatSettings(max_tokens=16, tokens_per_second=200, latencies=only_writes)
    with uvicorn_in_thread(create_app(base)) as url:
        inline = statistics.median(ttft(url, requests))
    with tempfile.TemporaryDirectory() as tmp:
        boosted = replace(base, mode="boosted")
        writes = ChatWrites(SQLiteStore(f"{tmp}/chat.sqlite3"), registry=CollectorRegistry())
        app = create_app(boosted, writes=writes, registry=CollectorRegistry())
        with uvicorn_in_thread(app) as url:
            deferred = statistics.median(ttft(url, requests))
    report(f"chat TTFT, writes inline (median of {requests}, ms)", f"{inline * 1000:.0f}")
    report(f"chat TTFT, writes deferred (median of {requests}, ms)", f"{deferred * 1000:.0f}")
    report("  saved per request (ms)", f"{(inline - deferred) * 1000:.0f}")


def main() -> None:
    print("streamboost deferred writes (shared noisy machine; indicative only)")
    asyncio.run(bench_request_path())
    asyncio.run(bench_postgres())
    bench_chat()


if __name__ == "__main__":
    main()
