"""Against real Redis: arguments of other types never share an entry, and whatever anyone
planted at a key is an error that falls back to the loader, never a crash or a wrong value."""

from __future__ import annotations

import dataclasses
import enum
import pickle
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from streamboost import Cache, cached
from streamboost._cache._envelope import FORMAT


@dataclasses.dataclass
class Admin:
    id: int


@dataclasses.dataclass
class Guest:
    id: int


class Role(enum.Enum):
    ADMIN = 1


@pytest.fixture
async def namespace(redis_url: str) -> AsyncIterator[str]:
    ns = f"sbtest:cache:untrusted:{uuid.uuid4().hex[:12]}"
    yield ns
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{ns}:*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def make(url: str, namespace: str) -> Cache:
    return Cache(url, namespace=namespace, registry=CollectorRegistry(), timeout=5.0)


@pytest.mark.parametrize("tier", ["", "tiered+"])
async def test_one_users_entry_is_never_served_for_another_type(
    redis_url: str, namespace: str, tier: str
) -> None:
    cache = make(tier + redis_url, namespace)
    loads: list[Any] = []

    @cached(ttl=60, cache=cache)
    async def load(who: Any) -> str:
        loads.append(who)
        return repr(who)

    # Pairs orjson wrote alike; the surrogate and the 65-bit int made orjson raise TypeError.
    arguments = [Admin(1), Guest(1), {"id": 1}, 1, Role.ADMIN, (1, 2), [1, 2], "\ud800", 2**64]
    try:
        for _ in range(2):
            for argument in arguments:
                assert await load(argument) == repr(argument)
                assert await load(who=argument) == repr(argument)
        assert loads == arguments
        assert cache.stats.misses == len(arguments)
        assert cache.stats.errors == 0
    finally:
        await cache.aclose()


def envelope(*head: Any, value: Any) -> bytes:
    return orjson.dumps([FORMAT, *head, value])


class Boom:
    """Unpickling it would create the file: a pickle payload must never run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def planted_values(marker: Path) -> dict[str, tuple[type, bytes]]:
    later, last = time.time() + 600, time.time() + 1200
    return {
        "times as strings": (str, envelope(0, str(later), str(last), 0.01, value="x")),
        "times as lists": (str, envelope(0, [later], [last], 0.01, value="x")),
        # Fresh with a positive-looking delta: the early-refresh draw would compare a str.
        "string delta": (str, envelope(0, later, last, "5.0", value="x")),
        "negative delta": (str, envelope(0, later, last, -1.0, value="x")),
        "a NaN time": (str, envelope(0, later, last, 0.01, value="x").replace(b"0.01", b"NaN")),
        "short envelope": (str, orjson.dumps([FORMAT, 0, later])),
        "version as a string": (str, envelope("0", later, last, 0.01, value="x")),
        "not an envelope": (str, b"123"),
        "not JSON": (str, b"\x80\x81 garbage"),
        "a raw int for a UUID": (uuid.UUID, envelope(0, later, last, 0.01, value=123)),
        "abc for a Decimal": (Decimal, envelope(0, later, last, 0.01, value="abc")),
        "a list for a UUID": (uuid.UUID, envelope(0, later, last, 0.01, value=[1])),
        "an int for a str": (str, envelope(0, later, last, 0.01, value=5)),
        "a pickle": (str, pickle.dumps(Boom(marker))),
    }


LOADED = {str: "loaded", uuid.UUID: uuid.UUID(int=7), Decimal: Decimal("1.25")}


@pytest.mark.parametrize("case", sorted(planted_values(Path())))
@pytest.mark.parametrize("tier", ["", "tiered+"])
async def test_planted_entry_is_an_error_dropped_and_reloaded(
    redis_url: str, namespace: str, tmp_path: Path, case: str, tier: str
) -> None:
    marker = tmp_path / "unpickled"
    returns, payload = planted_values(marker)[case]
    cache = make(tier + redis_url, namespace)
    client = aioredis.Redis.from_url(redis_url)
    loads = 0

    async def loader(item: str) -> Any:
        nonlocal loads
        loads += 1
        return LOADED[returns]

    loader.__annotations__["return"] = returns
    load = cached(ttl=600, cache=cache)(loader)
    try:
        key = load.bind("k").key
        await client.set(key, payload)
        assert await load("k") == LOADED[returns]
        assert (cache.stats.errors, cache.stats.misses, cache.stats.hits, loads) == (1, 0, 0, 1)
        assert await client.get(key) != payload  # replaced by the loader's entry
        cache.entries.clear()  # tiered: read it from Redis again
        assert await load("k") == LOADED[returns]
        assert (cache.stats.errors, cache.stats.hits, loads) == (1, 1, 1)
        assert not marker.exists()
    finally:
        await client.aclose()
        await cache.aclose()


async def test_planted_entry_is_dropped_when_the_loader_fails(
    redis_url: str, namespace: str
) -> None:
    cache = make(redis_url, namespace)
    client = aioredis.Redis.from_url(redis_url)

    @cached(ttl=60, cache=cache)
    async def load(item: str) -> uuid.UUID:
        raise RuntimeError("database down")

    try:
        key = load.bind("k").key
        later = time.time() + 600
        await client.set(key, envelope(0, later, later, 0.01, value=123))
        with pytest.raises(RuntimeError, match="database down"):
            await load("k")
        assert await client.get(key) is None
        assert cache.stats.errors == 1
    finally:
        await client.aclose()
        await cache.aclose()


async def test_planted_entries_in_get_many_are_errors(redis_url: str, namespace: str) -> None:
    cache = make(redis_url, namespace)
    client = aioredis.Redis.from_url(redis_url)

    @cached(ttl=60, cache=cache)
    async def load(item: str) -> Decimal:
        return Decimal(len(item))

    try:
        await load("ok")
        later = time.time() + 600
        await client.set(load.bind("bad").key, envelope(0, later, later, 0.01, value="abc"))
        assert await cache.get_many(load.bind("ok"), load.bind("bad")) == [Decimal(2), Decimal(3)]
        assert (cache.stats.misses, cache.stats.hits, cache.stats.errors) == (1, 1, 1)
    finally:
        await client.aclose()
        await cache.aclose()
