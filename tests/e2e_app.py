"""The app the Grafana end-to-end test scrapes: the example chat backend in boosted mode with
fast simulated latencies, wrapped in StreamBoost (which serves /metrics)."""

from __future__ import annotations

from typing import Any

from examples.chat.app import create_app
from examples.chat.settings import ChatSettings, Latencies

from streamboost import StreamBoost

FAST = Latencies(0.002, 0.002, 0.002, 0.002, 0.002)


def build_app() -> Any:
    settings = ChatSettings(
        mode="boosted", model_ttft=0.02, tokens_per_second=100, max_tokens=16, latencies=FAST
    )
    return StreamBoost(create_app(settings))
