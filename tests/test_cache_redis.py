"""Redis and tiered caches against real Redis servers.

The shared server (fixture ``redis_url``) is only touched under ``sbtest:cache:<random>``; a
test that needs to kill Redis or count commands runs its own redis-server on a free port.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from streamboost import Cache, CacheValueTooLarge, cached


@dataclasses.dataclass
class Message:
    role: str
    content: str


@dataclasses.dataclass
class Conversation:
    id: int
    messages: list[Message]
    started: datetime.datetime
    title: str | None = None


class Settings(BaseModel):
    language: str
    tokens: int
    tags: list[str]


@pytest.fixture
async def namespace(redis_url: str) -> AsyncIterator[str]:
    ns = f"sbtest:cache:{uuid.uuid4().hex[:12]}"
    yield ns
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{ns}:*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def make(url: str, namespace: str, **options: Any) -> Cache:
    # A generous Redis timeout: under CI load the default 50 ms can pass, the call fails open
    # and hit counts drift. Tests of the timeout itself pass timeout=0.05.
    options.setdefault("timeout", 5.0)
    return Cache(url, namespace=namespace, registry=CollectorRegistry(), **options)


class RedisServer:
    """A private redis-server on a free loopback port, which a test may kill and restart."""

    def __init__(self, directory: Path, password: str | None = None) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.directory = directory
        self.password = password
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.directory),
                *(("--requirepass", self.password) if self.password else ()),
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("redis-server exited at start") from None
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not listen on {self.port}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path, redis_url: str) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def test_two_users_never_see_each_others_values(redis_url: str, namespace: str) -> None:
    caches = [make(redis_url, namespace), make("tiered+" + redis_url, namespace)]
    for cache in caches:

        @cached(ttl=60, cache=cache)
        async def profile(user_id: str) -> dict[str, str]:
            await asyncio.sleep(0.001)
            return {"user": user_id, "secret": f"secret of {user_id}"}

        users = [f"user{i}" for i in range(50)] * 4
        results = await asyncio.gather(*(profile(u) for u in users))
        assert all(
            r["user"] == u and r["secret"].endswith(u) for r, u in zip(results, users, strict=True)
        )
    for cache in caches:
        await cache.aclose()


async def test_1000_concurrent_misses_run_one_load(redis_url: str, namespace: str) -> None:
    cache = make(redis_url, namespace)
    loads = 0

    @cached(ttl=60, cache=cache)
    async def history(session_id: str) -> list[str]:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.05)
        return [session_id]

    assert await asyncio.gather(*(history("s") for _ in range(1000))) == [["s"]] * 1000
    assert loads == 1
    await cache.aclose()


async def test_lock_makes_one_load_across_caches(redis_url: str, namespace: str) -> None:
    caches = [make(redis_url, namespace) for _ in range(4)]  # four "processes"
    loads = 0

    async def load(key: str) -> str:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.1)
        return key

    functions = [cached(ttl=60, cache=c, lock=True, name="shared.load")(load) for c in caches]
    results = await asyncio.gather(*(f("k") for f in functions for _ in range(10)))
    assert results == ["k"] * 40 and loads == 1
    for cache in caches:
        await cache.aclose()


async def test_lock_waiter_holds_no_pool_connection(redis_url: str, namespace: str) -> None:
    holder = make(redis_url, namespace)
    # Two connections: the invalidation listener's and one more. A waiter that kept a
    # connection while it waited would leave none for its polls: they would fail (counted as
    # errors) and it would load on its own.
    waiter = make(redis_url + "?max_connections=2", namespace)
    await waiter.wait_ready()
    gate = asyncio.Event()
    loads = 0

    async def load(key: str) -> str:
        nonlocal loads
        loads += 1
        await gate.wait()
        return key

    first = asyncio.create_task(cached(ttl=60, cache=holder, lock=True, name="locked")(load)("k"))
    for _ in range(500):  # bounded: until the holder has the lock and runs the loader
        if loads:
            break
        await asyncio.sleep(0.01)
    second = asyncio.create_task(cached(ttl=60, cache=waiter, lock=True, name="locked")(load)("k"))
    await asyncio.sleep(0.1)  # the waiter polls a few times meanwhile
    gate.set()
    assert await asyncio.gather(first, second) == ["k", "k"]
    assert loads == 1 and waiter.stats.errors == 0 and waiter.stats.hits == 1
    for cache in (holder, waiter):
        await cache.aclose()


async def test_every_supported_type_round_trips(redis_url: str, namespace: str) -> None:
    writer, reader = make(redis_url, namespace), make(redis_url, namespace)
    started = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC)
    convo = Conversation(7, [Message("user", "hi"), Message("assistant", "hello")], started)
    values: dict[str, Any] = {
        "dataclass": convo,
        "pydantic": Settings(language="en", tokens=3, tags=["a"]),
        "dict": {"a": [1, 2], "b": {"c": None}},
        "list": [Message("user", "x")],
        "none": None,
        "str": "héllo",
        "int": 3,
        "float": 2.5,
        "bool": True,
        "tuple": (1, "a"),
        "optional": None,
        "int_keys": {1: "one", 2: "two"},
    }
    annotations: dict[str, Any] = {
        "dataclass": Conversation,
        "pydantic": Settings,
        "dict": dict[str, Any],
        "list": list[Message],
        "none": None,
        "str": str,
        "int": int,
        "float": float,
        "bool": bool,
        "tuple": tuple[int, str],
        "optional": Conversation | None,
        "int_keys": dict[int, str],
    }
    for kind, value in values.items():

        async def produce(kind: str) -> Any:
            return values[kind]

        produce.__annotations__["return"] = annotations[kind]
        write = cached(ttl=60, cache=writer, name=f"types.{kind}")(produce)
        read = cached(ttl=60, cache=reader, name=f"types.{kind}")(produce)
        assert await write(kind) == value
        decoded = await read(kind)
        assert decoded == value and type(decoded) is type(value), kind
    assert reader.stats.hits == len(values) and reader.stats.misses == 0
    for cache in (writer, reader):
        await cache.aclose()


async def test_stale_value_from_redis_is_served_and_refreshed(
    redis_url: str, namespace: str
) -> None:
    writer, reader = make(redis_url, namespace), make(redis_url, namespace)
    version = 0

    async def doc(name: str) -> str:
        nonlocal version
        version += 1
        return f"{name} v{version}"

    write = cached(ttl=0.05, stale_ttl=60, cache=writer, name="doc")(doc)
    read = cached(ttl=0.05, stale_ttl=60, cache=reader, name="doc")(doc)
    assert await write("a") == "a v1"
    await asyncio.sleep(0.1)
    assert await read("a") == "a v1"  # stale in Redis: served at once, refreshed behind
    await reader.wait_refreshes()
    assert reader.stats.stale == 1 and version == 2
    assert await writer.get_many(write.bind("a")) == ["a v2"]
    for cache in (writer, reader):
        await cache.aclose()


async def test_tiered_tag_invalidation_drops_entries_read_from_redis(
    redis_url: str, namespace: str
) -> None:
    writer, reader = make(redis_url, namespace), make("tiered+" + redis_url, namespace)
    loads = 0

    async def profile(user_id: str) -> int:
        nonlocal loads
        loads += 1
        return loads

    tags = lambda user_id: [f"user:{user_id}"]  # noqa: E731
    write = cached(ttl=60, cache=writer, tags=tags, name="p")(profile)
    read = cached(ttl=60, cache=reader, tags=tags, name="p")(profile)
    await reader.wait_ready()
    assert await write("u") == 1
    for _ in range(100):  # bounded: a read racing the writer's event is not kept locally
        assert await read("u") == 1
        if len(reader.entries) == 1:  # now in the memory tier
            break
        await asyncio.sleep(0.01)
    assert len(reader.entries) == 1
    await reader.invalidate_tags("user:u")
    assert len(reader.entries) == 0
    assert await read("u") == 2
    for cache in (writer, reader):
        await cache.aclose()


async def test_invalidation_tags_namespace_and_size_cap(redis_url: str, namespace: str) -> None:
    one, two = make(redis_url, namespace), make(redis_url, namespace, max_value_bytes=64)
    loads: list[str] = []

    async def profile(user_id: str) -> str:
        loads.append(user_id)
        return user_id * 10

    tags = lambda user_id: [f"user:{user_id}"]  # noqa: E731
    a = cached(ttl=60, cache=one, tags=tags, name="p")(profile)
    b = cached(ttl=60, cache=two, tags=tags, name="p")(profile)
    await a("x")
    await b("x")
    await b.invalidate("x")
    await a("x")
    await one.invalidate_tags("user:x")
    await b("x")
    await one.wait_ready()
    await two.invalidate_namespace()
    for _ in range(500):  # the other cache learns the new version from the event
        await a("x")
        if len(loads) == 4:
            break
        await asyncio.sleep(0.01)
    assert loads == ["x", "x", "x", "x"]
    with pytest.raises(CacheValueTooLarge, match="max_value_bytes=64"):
        await b("y" * 10)
    await one.aclose()
    await two.aclose()


async def test_two_values_in_one_round_trip(private_redis: RedisServer) -> None:
    async def profile(user_id: str) -> dict[str, str]:
        return {"user": user_id}

    async def history(session_id: str) -> list[str]:
        return [session_id]

    warm = make(private_redis.url, "sbtest:cache:mget")
    await cached(ttl=60, cache=warm, name="profile")(profile)("u")
    await cached(ttl=60, cache=warm, name="history")(history)("s")
    await warm.aclose()
    cold = make(private_redis.url, "sbtest:cache:mget")
    cold_profile = cached(ttl=60, cache=cold, name="profile")(profile)
    cold_history = cached(ttl=60, cache=cold, name="history")(history)
    await cold.wait_ready()  # its invalidation listener has subscribed: no command of its own
    admin = aioredis.Redis.from_url(private_redis.url)
    await admin.config_resetstat()
    pair = await cold.get_many(cold_profile.bind("u"), cold_history.bind("s"))
    stats = await admin.info("commandstats")
    assert pair == [{"user": "u"}, ["s"]] and cold.stats.hits == 2
    assert stats["cmdstat_mget"]["calls"] == 1
    connection = ("cmdstat_config", "cmdstat_hello", "cmdstat_client", "cmdstat_info")
    assert {k for k in stats if k.split("|")[0] not in connection} == {"cmdstat_mget"}
    await admin.aclose()
    await cold.aclose()


async def test_invalidation_never_lists_keys(private_redis: RedisServer) -> None:
    cache = make(private_redis.url, "sbtest:cache:nokeys")
    loads = 0

    @cached(ttl=60, cache=cache, tags=lambda user_id: [f"user:{user_id}"])
    async def profile(user_id: str) -> int:
        nonlocal loads
        loads += 1
        return loads

    for user in ("a", "b", "c"):
        await profile(user)
    await profile.invalidate("a")
    await cache.invalidate_tags("user:b")
    await cache.invalidate_namespace()
    assert [await profile(user) for user in ("a", "b", "c")] == [4, 5, 6]
    admin = aioredis.Redis.from_url(private_redis.url)
    try:
        used = {name.split("|")[0] for name in await admin.info("commandstats")}
    finally:
        await admin.aclose()
    assert not used & {"cmdstat_keys", "cmdstat_scan", "cmdstat_flushdb", "cmdstat_flushall"}
    assert "cmdstat_del" in used and "cmdstat_evalsha" in used  # by key, by tag (a script)
    await cache.aclose()


async def test_redis_dies_mid_test_calls_succeed_and_breaker_probes(
    private_redis: RedisServer,
) -> None:
    cache = make(private_redis.url, "sbtest:cache:down", failure_threshold=3, recovery_time=0.2)
    loads = 0

    @cached(ttl=60, cache=cache)
    async def profile(user_id: str) -> str:
        nonlocal loads
        loads += 1
        return user_id

    assert await profile("a") == "a" and await cache.get_many(profile.bind("a")) == ["a"]
    private_redis.kill()
    for i in range(10):
        assert await profile(f"u{i}") == f"u{i}"
    assert cache.stats.errors == 10 and loads == 11
    assert cache.breaker.state == "open" and cache.breaker.opened == 1
    private_redis.start()
    for _ in range(40):  # past recovery_time each call may probe; a slow reconnect retries
        await asyncio.sleep(0.25)
        assert await profile("b") == "b"
        if cache.breaker.state == "closed":
            break
    assert cache.breaker.state == "closed"
    assert await profile("b") == "b" and cache.stats.hits == 2
    await cache.aclose()


async def test_a_lost_invalidation_channel_logs_once_with_the_redacted_url(
    tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(tmp_path, password="s3cret")
    server.start()
    cache = make("tiered+" + server.url, "sbtest:cache:chan", name="profiles")
    listener: Any = cache._listener
    caplog.set_level(logging.INFO, logger="streamboost.cache")
    try:
        async with asyncio.timeout(10):
            await cache.wait_ready()
        server.kill()
        for _ in range(400):  # bounded: retries back off from 0.05 s to 2 s
            if listener.failures >= 5:
                break
            await asyncio.sleep(0.02)
        assert listener.failures >= 5
        lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(lines) == 1, lines  # later attempts wait for the minute's summary
        assert lines[0].startswith(
            f"streamboost cache 'profiles' (redis://:***@127.0.0.1:{server.port}/0): "
            "invalidation channel lost (ConnectionError: "
        ), lines[0]
        assert "the memory tier is cleared and bypassed until it is back" in lines[0]
        server.start()
        async with asyncio.timeout(20):
            await cache.wait_ready()
        back = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
        assert len(back) == 1 and "invalidation channel back after" in back[0], back
        assert not any("s3cret" in r.getMessage() for r in caplog.records)
    finally:
        await cache.aclose()
        server.kill()


async def test_a_stalled_redis_costs_the_timeout_not_the_stall(
    private_redis: RedisServer,
) -> None:
    cache = make(private_redis.url, "sbtest:cache:stall", timeout=0.05)  # the default

    @cached(ttl=60, cache=cache)
    async def profile(user_id: str) -> str:
        return user_id

    assert await profile("warm") == "warm"
    assert private_redis.process is not None
    private_redis.process.send_signal(signal.SIGSTOP)  # alive but silent, like a stalled server
    try:
        start = time.monotonic()
        assert await profile("a") == "a"
        elapsed = time.monotonic() - start
    finally:
        private_redis.process.send_signal(signal.SIGCONT)
    assert cache.stats.errors == 1
    # Generous: a stalled server would hold the call until SIGCONT, i.e. forever.
    assert elapsed < 5.0, f"a stalled Redis held the call for {elapsed:.2f}s"
    await cache.aclose()


SECOND_PROCESS = """
import asyncio, sys
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from streamboost import Cache, cached

async def main(url: str, namespace: str) -> None:
    cache = Cache("tiered+" + url, namespace=namespace, registry=CollectorRegistry(), timeout=5.0)
    raw = aioredis.Redis.from_url(url)

    @cached(ttl=300, cache=cache, name="shared.value")
    async def value(key: str) -> str:
        return (await raw.get(namespace + ":source")).decode()

    async with asyncio.timeout(10):
        await cache.wait_ready()
    print(await value("k"), flush=True)
    await asyncio.sleep(0.05)
    print(await value("k"), "local" if cache.entries else "remote", flush=True)
    sys.stdin.readline()
    for _ in range(200):
        seen = await value("k")
        if seen != "one":
            break
        await asyncio.sleep(0.025)
    print(seen, flush=True)
    await cache.aclose()
    await raw.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.parametrize("change", ["invalidate", "refresh"])
async def test_tiered_invalidation_reaches_another_process(
    redis_url: str, namespace: str, change: str
) -> None:
    raw = aioredis.Redis.from_url(redis_url)
    await raw.set(f"{namespace}:source", "one")
    cache = make("tiered+" + redis_url, namespace)

    @cached(ttl=300, cache=cache, name="shared.value")
    async def value(key: str) -> str:
        return (await raw.get(f"{namespace}:source")).decode()

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        textwrap.dedent(SECOND_PROCESS),
        redis_url,
        namespace,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert child.stdout is not None and child.stdin is not None
    try:
        async with asyncio.timeout(20):
            assert (await child.stdout.readline()).split() == [b"one"]
            assert (await child.stdout.readline()).split() == [b"one", b"local"]
            await raw.set(f"{namespace}:source", "two")
            if change == "invalidate":
                await value.invalidate("k")
            else:
                assert await value.refresh("k") == "two"
            child.stdin.write(b"go\n")
            await child.stdin.drain()
            assert (await child.stdout.readline()).split() == [b"two"]
            assert await child.wait() == 0
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await cache.aclose()
        await raw.aclose()
