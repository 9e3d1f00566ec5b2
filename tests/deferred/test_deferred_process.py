"""Real server processes: SIGTERM drains everything, SIGKILL in durable mode loses nothing."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.deferred.support import PgTable, ServerProcess


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


async def test_sigterm_with_ten_thousand_items_pending_writes_them_all(
    pg_table: PgTable, servers: list[ServerProcess], tmp_path: Path
) -> None:
    env = {
        "SB_DSN": pg_table.dsn,
        "SB_TABLE": pg_table.name,
        "SB_SINK_DELAY": "0.05",  # 20 batches of 500: about a second of pending writes
        "SB_DEAD_LETTER": str(tmp_path / "dead.jsonl"),
    }
    server = await asyncio.to_thread(ServerProcess, env)
    servers.append(server)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.post("/put", params={"start": 0, "n": 10_000})
        assert response.json() == {"accepted": 10_000}
        response = await client.post("/defer", params={"start": 10_000, "n": 100})
        assert response.json() == {"deferred": 100}
    pending = await pg_table.count()
    # uvicorn re-raises the signal after a graceful shutdown, so -SIGTERM is a clean exit.
    assert await asyncio.to_thread(server.signal, signal.SIGTERM) in (0, -signal.SIGTERM)
    assert any("Application shutdown complete" in line for line in server.log)
    assert pending < 10_100, "nothing was pending at SIGTERM; the test proves nothing"
    assert await pg_table.numbers() == list(range(10_100))
    assert not (tmp_path / "dead.jsonl").exists()


async def test_sigkill_in_durable_mode_loses_no_accepted_item(
    pg_table: PgTable, redis_url: str, redis_prefix: str, servers: list[ServerProcess]
) -> None:
    env = {
        "SB_DSN": pg_table.dsn,
        "SB_TABLE": pg_table.name,
        "SB_MODE": "durable",
        "SB_REDIS": redis_url,
        "SB_STREAM": f"{redis_prefix}messages",
        # At most 250 items/s: most of the 10,000 are pending at the kill, even on a slow host.
        "SB_SINK_DELAY": "2.0",
        "SB_CLAIM_IDLE": "0.5",
    }
    first = await asyncio.to_thread(ServerProcess, env)
    servers.append(first)
    accepted: list[int] = []
    async with httpx.AsyncClient(base_url=first.url, timeout=30) as client:
        for start in range(0, 10_000, 1_000):
            response = await client.post("/put", params={"start": start, "n": 1_000})
            assert response.status_code == 200
            accepted.extend(range(start, start + 1_000))  # every put of this request returned
    assert await asyncio.to_thread(first.signal, signal.SIGKILL) == -signal.SIGKILL
    assert await pg_table.count() < len(accepted), "all written before the kill; proves nothing"

    second = await asyncio.to_thread(ServerProcess, {**env, "SB_SINK_DELAY": "0"})
    servers.append(second)
    for _ in range(1500):  # bounded: the restart reclaims and writes the rest
        if await pg_table.count() >= len(accepted):
            break
        await asyncio.sleep(0.02)
    assert await asyncio.to_thread(second.signal, signal.SIGTERM) in (0, -signal.SIGTERM)
    assert await pg_table.numbers() == accepted  # each once: the sink upserts on Entry.key
