"""The slow services a chat backend calls before it can stream: simulated with sleeps.

Each call counts itself, so the demo and the tests can see how many loads really ran.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from .settings import Latencies


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

    async def load_profile(self, user_id: str) -> Profile:
        self.calls["load_profile"] += 1
        await asyncio.sleep(self.latencies.load_profile)
        return Profile(user_id=user_id, name=f"user {user_id}")

    async def load_history(self, session_id: str) -> list[Message]:
        self.calls["load_history"] += 1
        await asyncio.sleep(self.latencies.load_history)
        return [Message("user", "hello"), Message("assistant", f"hi, session {session_id}")]

    async def retrieve(self, query: str) -> list[str]:
        self.calls["retrieval"] += 1
        await asyncio.sleep(self.latencies.retrieval)
        return [f"document about {query[:20]}"]

    async def create_session(self, user_id: str, session_id: str) -> None:
        self.calls["create_session"] += 1
        await asyncio.sleep(self.latencies.create_session)

    async def save_message(self, session_id: str, role: str, content: str) -> None:
        self.calls["save_message"] += 1
        await asyncio.sleep(self.latencies.save_message)
        self.saved.append((session_id, role, content))
