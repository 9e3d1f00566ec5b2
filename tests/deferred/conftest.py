"""Fixtures of the deferred-write tests: own PostgreSQL tables and Redis keys, cleaned up after."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from redis.asyncio import Redis
from tests.deferred.support import PgTable

from streamboost import DeferConfig, configure_defer


@pytest.fixture
async def pg_table(postgres_dsn: str) -> AsyncIterator[PgTable]:
    """A fresh ``sbtest_deferred_<suffix>`` table (key text primary key, n int), dropped after."""
    name = f"sbtest_deferred_{secrets.token_hex(4)}"
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=4)
    await pool.execute(f"CREATE TABLE {name} (key text PRIMARY KEY, n int NOT NULL)")
    try:
        yield PgTable(postgres_dsn, name, pool)
    finally:
        await pool.execute(f"DROP TABLE IF EXISTS {name}")
        await pool.close()


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix ``sbtest:deferred:<suffix>:``; every key under it is deleted after."""
    prefix = f"sbtest:deferred:{secrets.token_hex(4)}:"
    yield prefix
    redis = Redis.from_url(redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


@pytest.fixture(autouse=True)
def fresh_defer() -> Iterator[None]:
    """Each test gets its own defer() runner (the default one is per process)."""
    configure_defer(DeferConfig())
    yield
    configure_defer(DeferConfig())
