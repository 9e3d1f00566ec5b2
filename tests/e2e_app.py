"""The app the Grafana end-to-end test scrapes: the example chat backend in boosted mode (its
loads run as phases with gather_phases, its writes deferred into SQLite, wrapped in StreamBoost,
which serves /metrics) with fast simulated latencies and the user's profile cached."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from examples.chat.app import create_app
from examples.chat.backend import Backend, Profile
from examples.chat.settings import ChatSettings, Latencies
from examples.chat.store import ChatWrites, SQLiteStore
from prometheus_client import CollectorRegistry

from streamboost import Cache, cached

FAST = Latencies(0.005, 0.005, 0.005, 0.005, 0.005)


class CachedBackend(Backend):
    """The example backend with ``load_profile`` behind a memory ``Cache``."""

    def __init__(self, latencies: Latencies, registry: CollectorRegistry) -> None:
        super().__init__(latencies=latencies)
        cache = Cache("memory://", namespace="e2e", name="e2e_profiles", registry=registry)
        delay = latencies.load_profile

        @cached(ttl=60, cache=cache, name="e2e_profile")
        async def profile(user_id: str) -> dict[str, str]:
            await asyncio.sleep(delay)
            return {"user_id": user_id, "name": f"user {user_id}"}

        self._profile = profile

    async def load_profile(self, user_id: str) -> Profile:
        return Profile(**await self._profile(user_id))


def build_app(workdir: Path) -> Any:
    """A fresh app with its own registry: its /metrics shows this app only, whatever other
    tests in the process counted in the default registry."""
    registry = CollectorRegistry()
    settings = ChatSettings(
        mode="boosted", model_ttft=0.02, tokens_per_second=100, max_tokens=16, latencies=FAST
    )
    writes = ChatWrites(
        SQLiteStore(str(workdir / "chat.sqlite3")),
        name="e2e_messages",
        max_delay=0.05,
        dead_letter=workdir / "dead-letters.jsonl",
        registry=registry,
    )
    backend = CachedBackend(FAST, registry)
    return create_app(settings, backend=backend, writes=writes, registry=registry)
