"""DeferredWriter in memory mode: batching, retries, dead letters, bounds, sync sinks, metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from tests.deferred.support import PgTable

from streamboost import DeferredWriter, Entry, QueueFull, RetryPolicy, WriterClosed
from streamboost._deferred._lifespan import drain_all

FAST_RETRY = RetryPolicy(retries=8, backoff=0.005, max_backoff=0.02)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_ten_thousand_items_land_exactly_once_in_postgres(pg_table: PgTable) -> None:
    registry = CollectorRegistry()
    sizes: list[int] = []

    async def sink(entries: list[Entry[int]]) -> None:
        sizes.append(len(entries))
        # Plain INSERT: a duplicate key would fail the batch, so "exactly once" is checked.
        await pg_table.pool.execute(
            f"INSERT INTO {pg_table.name} (key, n) SELECT * FROM unnest($1::text[], $2::int[])",
            [e.key for e in entries],
            [e.item for e in entries],
        )

    async with DeferredWriter(
        sink, name="pg", max_batch=500, max_delay=0.05, retries=0, registry=registry
    ) as writer:
        for n in range(10_000):
            await writer.put(n)
    assert await pg_table.numbers() == list(range(10_000))
    assert writer.written == 10_000 and writer.dead_lettered == 0
    assert max(sizes) <= 500 and sum(sizes) == 10_000
    assert sample(registry, "streamboost_deferred_items_total", writer="pg", outcome="written") == (
        10_000
    )
    assert sample(registry, "streamboost_deferred_batch_size_count", writer="pg") == len(sizes)
    assert sample(registry, "streamboost_deferred_batch_size_sum", writer="pg") == 10_000
    assert sample(registry, "streamboost_deferred_write_duration_seconds_count", writer="pg") == (
        len(sizes)
    )
    assert sample(registry, "streamboost_deferred_lag_seconds_count", writer="pg") == len(sizes)
    assert sample(registry, "streamboost_deferred_queue_depth", writer="pg") == 0


async def test_failing_sink_keeps_the_batch_and_every_item_lands_after_recovery(
    pg_table: PgTable, tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    healthy = asyncio.Event()
    depth_while_failing: list[int] = []
    writer: DeferredWriter[int]

    async def sink(entries: list[Entry[int]]) -> None:
        if not healthy.is_set():
            depth_while_failing.append(writer.queue_depth())
            raise ConnectionError("database is down")
        await pg_table.pool.execute(
            f"INSERT INTO {pg_table.name} (key, n) SELECT * FROM unnest($1::text[], $2::int[])",
            [e.key for e in entries],
            [e.item for e in entries],
        )

    writer = DeferredWriter(
        sink,
        name="flaky",
        max_batch=100,
        max_delay=0.01,
        retries=RetryPolicy(retries=50, backoff=0.005, max_backoff=0.02),
        dead_letter=tmp_path / "dead.jsonl",
        registry=registry,
    )
    async with writer:
        for n in range(1_000):
            await writer.put(n)
        for _ in range(1000):  # until the sink has failed a few times
            if len(depth_while_failing) >= 3:
                break
            await asyncio.sleep(0.005)
        healthy.set()
    assert await pg_table.numbers() == list(range(1_000))
    # A failed batch never left the buffer.
    assert depth_while_failing and all(depth == 1_000 for depth in depth_while_failing)
    assert writer.retried >= 300 and writer.dead_lettered == 0
    assert not (tmp_path / "dead.jsonl").exists()
    assert sample(registry, "streamboost_deferred_items_total", writer="flaky", outcome="retried")
    assert sample(
        registry, "streamboost_deferred_items_total", writer="flaky", outcome="written"
    ) == (1_000)


async def test_after_the_last_retry_items_go_to_the_jsonl_dead_letters(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    calls = 0

    async def sink(entries: list[Entry[dict[str, Any]]]) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("constraint violated")

    path = tmp_path / "dead.jsonl"
    async with DeferredWriter(
        sink,
        name="dead",
        max_batch=10,
        max_delay=0.01,
        retries=RetryPolicy(retries=2, backoff=0.001, max_backoff=0.002),
        dead_letter=path,
        registry=registry,
    ) as writer:
        for n in range(25):
            await writer.put({"n": n})
    records = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [r["item"]["n"] for r in records] == list(range(25))
    assert all(r["writer"] == "dead" and "constraint violated" in r["error"] for r in records)
    assert len({r["key"] for r in records}) == 25
    assert calls == 3 * 3  # three batches, each tried 1 + 2 times
    assert writer.dead_lettered == 25 and writer.written == 0
    assert sample(
        registry, "streamboost_deferred_items_total", writer="dead", outcome="dead_lettered"
    ) == (25)


async def test_dead_letters_in_a_redis_stream(redis_url: str, redis_prefix: str) -> None:
    async def sink(entries: list[Entry[int]]) -> None:
        raise RuntimeError("nope")

    stream = f"{redis_prefix}messages"
    async with DeferredWriter(
        sink,
        name="redisdead",
        max_delay=0.01,
        retries=0,
        stream=stream,
        dead_letter=redis_url,
        registry=CollectorRegistry(),
    ) as writer:
        for n in range(5):
            await writer.put(n)
    redis = Redis.from_url(redis_url)
    try:
        entries = await redis.xrange(f"{stream}:dead")
    finally:
        await redis.aclose()
    assert [orjson.loads(fields[b"d"])["item"] for _, fields in entries] == list(range(5))


async def test_full_queue_waits_or_raises(tmp_path: Path) -> None:
    gate = asyncio.Event()
    written: list[int] = []

    async def sink(entries: list[Entry[int]]) -> None:
        await gate.wait()
        written.extend(e.item for e in entries)

    registry = CollectorRegistry()
    strict = DeferredWriter(
        sink, name="strict", max_batch=2, max_queue=4, block=False, registry=registry
    )
    async with strict:
        for n in range(4):
            await strict.put(n)
        with pytest.raises(QueueFull, match="max_queue=4"):
            await strict.put(4)
        gate.set()
    assert written == [0, 1, 2, 3]

    gate.clear()
    patient = DeferredWriter(sink, name="patient", max_batch=2, max_queue=4, registry=registry)
    async with patient:
        for n in range(4):
            await patient.put(n)
        waiting = asyncio.create_task(patient.put(4))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # no room until the sink succeeds
        gate.set()
        await asyncio.wait_for(waiting, 10)
    assert written == [0, 1, 2, 3, 0, 1, 2, 3, 4]


async def test_put_needs_a_started_writer() -> None:
    async def sink(entries: list[Entry[int]]) -> None:
        pass

    writer = DeferredWriter(sink, name="idle", registry=CollectorRegistry())
    with pytest.raises(WriterClosed, match="async with writer"):
        await writer.put(1)
    async with writer:
        await writer.put(1)
    with pytest.raises(WriterClosed):
        await writer.put(2)


async def test_a_batch_is_written_within_max_delay_without_more_puts() -> None:
    written = asyncio.Event()

    async def sink(entries: list[Entry[int]]) -> None:
        written.set()

    async with DeferredWriter(
        sink, name="delay", max_batch=1000, max_delay=0.05, registry=CollectorRegistry()
    ) as writer:
        await writer.put(1)
        await asyncio.wait_for(written.wait(), 5)  # generous: the delay is 50 ms


async def test_drain_deadline_moves_the_rest_to_dead_letters(tmp_path: Path) -> None:
    async def stuck(entries: list[Entry[int]]) -> None:
        await asyncio.Event().wait()

    path = tmp_path / "dead.jsonl"
    writer = DeferredWriter(
        stuck, name="stuck", max_delay=0.01, dead_letter=path, registry=CollectorRegistry()
    )
    await writer.start()
    for n in range(7):
        await writer.put(n)
    assert await writer.aclose(drain_timeout=0.2) == 7
    items = [orjson.loads(line)["item"] for line in path.read_bytes().splitlines()]
    assert items == list(range(7))


async def test_sync_sinks_of_different_writers_run_in_parallel_threads() -> None:
    # Both sinks block until the other one is inside too: with asgiref's default single thread
    # (thread_sensitive=True) this would deadlock and time out.
    barrier = threading.Barrier(2, timeout=10)
    threads: list[str] = []

    def sink(entries: list[Entry[int]]) -> None:
        threads.append(threading.current_thread().name)
        barrier.wait()

    registry = CollectorRegistry()
    first = DeferredWriter(sink, name="sync_a", max_delay=0.01, retries=0, registry=registry)
    second = DeferredWriter(sink, name="sync_b", max_delay=0.01, retries=0, registry=registry)
    async with first, second:
        await first.put(1)
        await second.put(2)
    assert first.written == 1 and second.written == 1
    assert all(name.startswith("streamboost-deferred") for name in threads)
    assert threading.main_thread().name not in threads


def test_options_are_validated() -> None:
    def sink(entries: list[Entry[int]]) -> None:
        pass

    with pytest.raises(ValueError, match="max_batch=0"):
        DeferredWriter(sink, max_batch=0)
    with pytest.raises(ValueError, match="max_delay=-1"):
        DeferredWriter(sink, max_delay=-1)
    with pytest.raises(ValueError, match="durable='postgres://x'"):
        DeferredWriter(sink, durable="postgres://x")
    with pytest.raises(ValueError, match="retries=-1"):
        RetryPolicy(retries=-1)
    with pytest.raises(TypeError, match=r"retries=1\.5"):
        DeferredWriter(sink, retries=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name='a b'"):
        DeferredWriter(sink, name="a b")


async def test_writers_sharing_a_name_add_up_in_the_metrics() -> None:
    async def sink(entries: list[Entry[int]]) -> None:
        pass

    registry = CollectorRegistry()
    first = DeferredWriter(sink, name="same", max_delay=0.01, registry=registry)
    second = DeferredWriter(sink, name="same", max_delay=0.01, registry=registry)
    async with first, second:
        await first.put(1)
        await second.put(2)
        await second.put(3)
    labels = {"writer": "same", "outcome": "written"}
    assert registry.get_sample_value("streamboost_deferred_items_total", labels) == 3


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(retries=10, backoff=0.1, max_backoff=1.0, jitter=False)
    assert [policy.delay(n) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    jittered = RetryPolicy(retries=10, backoff=0.1, max_backoff=1.0)
    assert all(0 <= jittered.delay(3) <= 0.8 for _ in range(100))


async def test_items_the_dead_letters_cannot_take_are_counted_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def failing(entries: list[Entry[int]]) -> None:
        raise ConnectionError("database down")

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    registry = CollectorRegistry()
    writer = DeferredWriter(
        failing,
        name="lossy",
        max_delay=0.01,
        retries=0,
        dead_letter=blocker / "dead.jsonl",  # mkdir fails: FileExistsError
        registry=registry,
    )
    await writer.start()
    for n in range(5):
        await writer.put(n)
    with caplog.at_level(logging.ERROR, logger="streamboost.deferred"):
        left = await drain_all([writer], 0.3)  # what StreamBoost's lifespan shutdown runs
    assert left == 5
    assert (writer.written, writer.dead_lettered, writer.lost) == (0, 0, 5)
    assert sample(registry, "streamboost_deferred_items_total", writer="lossy", outcome="lost") == 5
    assert "5 items LOST" in caplog.text
    assert "moved to the dead letters" not in caplog.text


async def test_the_jsonl_dead_letters_are_private_to_the_user(tmp_path: Path) -> None:
    async def failing(entries: list[Entry[str]]) -> None:
        raise ConnectionError("database down")

    path = tmp_path / "dead.jsonl"
    old = os.umask(0o022)
    try:
        async with DeferredWriter(
            failing, name="private", retries=0, max_delay=0.01, dead_letter=path,
            registry=CollectorRegistry(),
        ) as writer:  # fmt: skip
            await writer.put("a user's message")
    finally:
        os.umask(old)
    assert writer.dead_lettered == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
