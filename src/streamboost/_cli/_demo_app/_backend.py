"""The slow services a chat backend calls before it can stream: simulated with sleeps.

Each call counts itself, so the demo and the tests can see how many loads really ran.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from ._settings import Latencies

T = TypeVar("T")


@dataclass(slots=True)
class Profile:
    user_id: str
    name: str
    language: str = "en"


@dataclass(slots=True)
class Message:
    role: str
    content: str


@dataclass
class Backend:
    """Simulated profile store, history store, retriever and session store."""

    latencies: Latencies = field(default_factory=Latencies)
    calls: Counter[str] = field(default_factory=Counter)
    saved: list[tuple[str, str, str]] = field(default_factory=list)
    # Seconds spent in each call, summed: the demo's per-step breakdown.
    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    def reset_counts(self) -> None:
        self.calls.clear()
        self.seconds.clear()

    async def _timed(self, name: str, delay: float) -> None:
        self.calls[name] += 1
        start = time.perf_counter()
        await asyncio.sleep(delay)
        self.seconds[name] += time.perf_counter() - start

    async def blocking(self, write: Awaitable[T]) -> T:
        """Await a write on the request path, counting it as one that blocks the stream."""
        self.calls["blocking_writes"] += 1
        start = time.perf_counter()
        try:
            return await write
        finally:
            self.seconds["blocking_writes"] += time.perf_counter() - start

    async def load_profile(self, user_id: str) -> Profile:
        await self._timed("load_profile", self.latencies.load_profile)
        return Profile(user_id=user_id, name=f"user {user_id}")

    async def load_history(self, session_id: str) -> list[Message]:
        await self._timed("load_history", self.latencies.load_history)
        return [Message(role, content) for sid, role, content in self.saved if sid == session_id]

    async def retrieve(self, query: str) -> list[str]:
        await self._timed("retrieval", self.latencies.retrieval)
        return [f"document about {query[:20]}"]

    async def create_session(self, user_id: str, session_id: str) -> None:
        await self._timed("create_session", self.latencies.create_session)

    async def save_message(self, session_id: str, role: str, content: str) -> None:
        await self._timed("save_message", self.latencies.save_message)
        self.saved.append((session_id, role, content))
