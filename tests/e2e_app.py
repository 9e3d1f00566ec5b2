"""The app the Grafana end-to-end test scrapes: the example chat backend in boosted mode (its
loads run as phases with gather_phases, its writes deferred into SQLite, wrapped in StreamBoost,
which serves /metrics) with fast simulated latencies; profile and history cached in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from examples.chat.app import create_app
from examples.chat.settings import ChatSettings, Latencies
from examples.chat.store import ChatWrites, SQLiteStore
from prometheus_client import CollectorRegistry

from streamboost import Cache

FAST = Latencies(0.005, 0.005, 0.005, 0.005, 0.005)


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
    cache = Cache("memory://", namespace="e2e", name="e2e", registry=registry)
    return create_app(settings, writes=writes, cache=cache, registry=registry)
