"""Durable mode: Redis stream outbox, consumer group, XAUTOCLAIM, idempotency keys."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from tests.deferred.support import PgTable
from tests.needs import free_port

from streamboost import DeferredWriter, Entry
from streamboost._deferred import run_worker


def upsert_sink(table: PgTable) -> object:
    async def sink(entries: list[Entry[int]]) -> None:
        await table.pool.execute(
            f"INSERT INTO {table.name} (key, n) SELECT * FROM unnest($1::text[], $2::int[]) "
            "ON CONFLICT (key) DO NOTHING",
            [e.key for e in entries],
            [e.item for e in entries],
        )

    return sink


async def test_ten_thousand_durable_items_land_exactly_once(
    pg_table: PgTable, redis_url: str, redis_prefix: str
) -> None:
    stream = f"{redis_prefix}messages"
    writer: DeferredWriter[int] = DeferredWriter(
        upsert_sink(pg_table),  # type: ignore[arg-type]
        name="durable",
        durable=redis_url,
        stream=stream,
        max_batch=1000,
        max_delay=0.02,
        registry=CollectorRegistry(),
    )
    async with writer:
        for start in range(0, 10_000, 500):
            await asyncio.gather(*(writer.put(n) for n in range(start, start + 500)))
    assert await pg_table.numbers() == list(range(10_000))
    assert writer.written == 10_000
    redis = Redis.from_url(redis_url)
    try:
        assert await redis.xlen(stream) == 0  # acknowledged entries are deleted
        groups = await redis.xinfo_groups(stream)
        assert groups[0]["pending"] == 0
    finally:
        await redis.aclose()


async def test_put_is_on_the_stream_before_it_returns(redis_url: str, redis_prefix: str) -> None:
    async def sink(entries: list[Entry[dict[str, str]]]) -> None:
        pass

    stream = f"{redis_prefix}outbox"
    writer: DeferredWriter[dict[str, str]] = DeferredWriter(
        sink, name="producer", durable=redis_url, stream=stream, worker=False,
        registry=CollectorRegistry(),
    )  # fmt: skip
    redis = Redis.from_url(redis_url)
    try:
        async with writer:
            await writer.put({"text": "hi"})
            entries = await redis.xrange(stream)
            assert len(entries) == 1
            fields = entries[0][1]
            assert orjson.loads(fields[b"d"]) == {"text": "hi"}
            assert fields[b"k"].startswith(writer._prefix.encode())
    finally:
        await redis.aclose()


async def test_entries_of_a_dead_consumer_are_reclaimed(
    pg_table: PgTable, redis_url: str, redis_prefix: str
) -> None:
    stream = f"{redis_prefix}reclaim"
    registry = CollectorRegistry()
    producer: DeferredWriter[int] = DeferredWriter(
        upsert_sink(pg_table),  # type: ignore[arg-type]
        name="producer", durable=redis_url, stream=stream, worker=False, registry=registry,
    )  # fmt: skip
    async with producer:
        for n in range(50):
            await producer.put(n)
    redis = Redis.from_url(redis_url)
    try:
        # A consumer reads everything and dies before acknowledging.
        read = await redis.xreadgroup("streamboost", "dead-consumer", {stream: ">"}, count=100)
        assert len(read[0][1]) == 50
    finally:
        await redis.aclose()
    consumer: DeferredWriter[int] = DeferredWriter(
        upsert_sink(pg_table),  # type: ignore[arg-type]
        name="consumer", durable=redis_url, stream=stream, claim_idle=0.2, registry=registry,
    )  # fmt: skip
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(consumer, stop=stop))
    redis = Redis.from_url(redis_url)
    try:
        for _ in range(1000):  # bounded: until the entries are written, the dead consumer gone
            names = [c["name"] for c in await redis.xinfo_consumers(stream, "streamboost")]
            if await pg_table.count() == 50 and b"dead-consumer" not in names:
                break
            await asyncio.sleep(0.02)
        stop.set()
        assert await asyncio.wait_for(worker, 10) == 0
        assert await redis.xinfo_consumers(stream, "streamboost") == []  # left on a clean stop
    finally:
        await redis.aclose()
    assert await pg_table.numbers() == list(range(50))


async def test_redelivery_is_idempotent_through_the_key(
    pg_table: PgTable, redis_url: str, redis_prefix: str
) -> None:
    # The sink commits, then fails before the ack could happen: the batch is delivered again
    # with the same keys, and the upsert keeps one row per item.
    stream = f"{redis_prefix}again"
    calls = 0
    base = upsert_sink(pg_table)

    async def commit_then_fail(entries: list[Entry[int]]) -> None:
        nonlocal calls
        calls += 1
        await base(entries)  # type: ignore[operator]
        if calls == 1:
            raise ConnectionError("lost the connection after COMMIT")

    async with DeferredWriter(
        commit_then_fail, name="again", durable=redis_url, stream=stream, retries=3,
        max_delay=0.01, registry=CollectorRegistry(),
    ) as writer:  # fmt: skip
        for n in range(20):
            await writer.put(n)
    assert calls >= 2
    assert await pg_table.numbers() == list(range(20))


async def test_standalone_worker_entry_point_consumes_and_stops_on_sigterm(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    stream = f"{redis_prefix}standalone"
    out = tmp_path / "out.jsonl"

    async def unused(entries: list[Entry[int]]) -> None:
        raise AssertionError("the app does not consume: worker=False")

    async with DeferredWriter(
        unused, name="app", durable=redis_url, stream=stream, worker=False,
        registry=CollectorRegistry(),
    ) as producer:  # fmt: skip
        for n in range(100):
            await producer.put(n)
    # Through the real command line: ``streamboost worker TARGET ...``.
    code = "import sys; from streamboost._cli import main; sys.exit(main(sys.argv[1:]))"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "worker", "tests.deferred.worker_target:sink",
        "--redis", redis_url, "--stream", stream, "--name", "standalone", "--max-delay", "0.01",
        env={**os.environ, "SB_OUT": str(out)},
    )  # fmt: skip
    try:
        for _ in range(1000):  # bounded: until the worker wrote everything
            if out.exists() and len(out.read_bytes().splitlines()) >= 100:
                break
            await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0  # drained, nothing left
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    items = [orjson.loads(line)[1] for line in out.read_bytes().splitlines()]
    assert items == list(range(100))


@pytest.fixture
def stoppable_redis(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.02)
        yield server, port
    finally:
        server.send_signal(signal.SIGCONT)
        server.kill()
        server.wait(5)


async def test_durable_put_is_bounded_by_put_timeout(
    tmp_path: Path, stoppable_redis: tuple[subprocess.Popen[bytes], int]
) -> None:
    server, port = stoppable_redis
    writer = DeferredWriter(
        lambda entries: None, name="bounded", durable=f"redis://127.0.0.1:{port}/0",
        worker=False, put_timeout=0.2, dead_letter=tmp_path / "dead.jsonl",
        registry=CollectorRegistry(),
    )  # fmt: skip
    await writer.start()
    await writer.put(1)
    server.send_signal(signal.SIGSTOP)  # the socket stays open and never answers
    try:
        with pytest.raises(TimeoutError, match=r"put_timeout=0\.2 s"):
            await writer.put(2)
    finally:
        server.send_signal(signal.SIGCONT)
    await writer.aclose()


def _redis_server(port: int, directory: Path) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return server
        except OSError:
            time.sleep(0.02)
    server.kill()
    raise RuntimeError(f"redis-server did not listen on {port}")


async def test_a_worker_whose_redis_dies_logs_once_then_says_it_is_back(
    tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    server = _redis_server(port, tmp_path)
    written: list[int] = []

    async def sink(entries: list[Entry[int]]) -> None:
        written.extend(e.item for e in entries)

    writer = DeferredWriter(
        sink, name="outage", durable=f"redis://127.0.0.1:{port}/0", max_delay=0.01,
        dead_letter=tmp_path / "dead.jsonl", registry=CollectorRegistry(),
    )  # fmt: skip
    caplog.set_level(logging.DEBUG, logger="streamboost.deferred")

    def worker_errors() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "worker error" in r.getMessage()]

    try:
        await writer.start()
        server.kill()
        server.wait(5)
        for _ in range(500):  # bounded: the worker backs off from 0.05 s to 5 s
            if len(worker_errors()) >= 4:
                break
            await asyncio.sleep(0.01)
        errors = worker_errors()
        assert len(errors) >= 4
        assert [r.levelno for r in errors].count(logging.ERROR) == 1  # the rest at DEBUG
        assert (
            errors[0]
            .getMessage()
            .startswith(
                f"streamboost stream 'streamboost:deferred:outage' (redis://127.0.0.1:{port}/0): "
                "worker error (attempt 1)"
            )
        )
        server = _redis_server(port, tmp_path)
        for _ in range(1000):
            if any("worker back after" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.01)
        assert any("worker back after" in r.getMessage() for r in caplog.records)
        await writer.put(7)
    finally:
        left = await writer.aclose(10)
        server.kill()
        server.wait(5)
    assert (written, left) == ([7], 0)
