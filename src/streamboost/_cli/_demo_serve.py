"""``streamboost demo --serve``: keep the boosted example up for Prometheus and Grafana.

A gentle background load (one stream at a time, a short pause between) keeps every panel fed,
so a user who points Prometheus and Grafana at it sees live data at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ._loopback import uvicorn_in_thread

PAUSE_BETWEEN_STREAMS = 0.5


async def _background_load(url: str, stop_at: float) -> int:
    import httpx

    streams = 0
    async with httpx.AsyncClient(timeout=30) as client:
        while time.monotonic() < stop_at:
            payload = {"user_id": f"user-{streams % 5}", "session_id": f"s-{streams % 5}"}
            async with client.stream("POST", url, json=payload) as response:
                async for _ in response.aiter_raw():
                    pass
            streams += 1
            await asyncio.sleep(max(0.0, min(PAUSE_BETWEEN_STREAMS, stop_at - time.monotonic())))
    return streams


def serve_demo(
    app_module: Any, settings: Any, *, port: int, duration: float | None, load: bool
) -> int:
    """Serve the boosted app on 127.0.0.1:``port`` until Ctrl-C (or ``duration`` seconds)."""
    app = app_module.create_app(settings)
    with uvicorn_in_thread(app, port=port) as base:
        print(f"boosted example chat app:  {base}/chat/stream  (POST, SSE)")
        print(f"Prometheus metrics:        {base}/metrics")
        print("Point Prometheus and Grafana at it:")
        print("  uv run streamboost dashboards export ./streamboost-grafana")
        print(f"  scrape target: {base.removeprefix('http://')}  (see prometheus/prometheus.yml)")
        print("  Grafana provisioning folder: ./streamboost-grafana/provisioning")
        print("Press Ctrl-C to stop." if duration is None else f"Serving for {duration:g} s.")
        stop_at = time.monotonic() + (duration if duration is not None else float("inf"))
        streams = 0
        try:
            if load:
                streams = asyncio.run(_background_load(f"{base}/chat/stream", stop_at))
            else:
                while time.monotonic() < stop_at:
                    time.sleep(min(1.0, max(0.0, stop_at - time.monotonic())))
        except KeyboardInterrupt:
            pass
        print(f"stopped after {streams} background streams")
    return 0
