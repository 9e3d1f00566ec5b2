"""Helpers shared by the deferred-write tests."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass
class PgTable:
    dsn: str
    name: str
    pool: asyncpg.Pool

    async def numbers(self) -> list[int]:
        rows = await self.pool.fetch(f"SELECT n FROM {self.name} ORDER BY n")
        return [row["n"] for row in rows]

    async def count(self) -> int:
        return int(await self.pool.fetchval(f"SELECT count(*) FROM {self.name}"))
