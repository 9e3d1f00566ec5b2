"""The app the Grafana end-to-end test scrapes: the example chat backend in boosted mode with
fast simulated latencies, its pre-stream loads cached and timed as phases, its writes deferred
(the example's DeferredWriter into SQLite), wrapped in StreamBoost (which serves /metrics)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from examples.chat.app import create_app
from examples.chat.backend import Backend, Message, Profile
from examples.chat.settings import ChatSettings, Latencies
from examples.chat.store import ChatWrites, SQLiteStore
from prometheus_client import CollectorRegistry

from streamboost import Cache, StreamBoost, cached, gather_phases, phase

FAST = Latencies(0.005, 0.005, 0.005, 0.005, 0.005)


class PhasedBackend(Backend):
    """The example backend with the profile cached and every pre-stream load a phase."""

    def __init__(self, latencies: Latencies, registry: CollectorRegistry) -> None:
        super().__init__(latencies=latencies)
        # Memory cache: the test shares no state with other processes.
        cache = Cache("memory://", namespace="e2e", name="e2e_profiles", registry=registry)
        delay = latencies.load_profile

        @cached(ttl=60, cache=cache, name="e2e_profile")
        async def profile(user_id: str) -> dict[str, str]:
            await asyncio.sleep(delay)
            return {"user_id": user_id, "name": f"user {user_id}"}

        self._profile = profile

    async def load_profile(self, user_id: str) -> Profile:
        async with phase("profile"):
            return Profile(**await self._profile(user_id))

    async def load_history(self, session_id: str) -> list[Message]:
        (history,) = await gather_phases(history=Backend.load_history(self, session_id))
        loaded: list[Message] = history
        return loaded

    async def retrieve(self, query: str) -> list[str]:
        async with phase("retrieval"):
            return await Backend.retrieve(self, query)


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
    backend = PhasedBackend(FAST, registry)
    return StreamBoost(create_app(settings, backend=backend, writes=writes), registry=registry)
