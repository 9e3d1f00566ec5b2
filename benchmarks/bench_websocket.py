"""WebSocket metrics cost: one connection of N messages each way, bare vs StreamBoost.

    uv run python benchmarks/bench_websocket.py [--messages 2000]

In process (no server, no socket): the app receives N text messages and sends N JSON
messages through the ASGI callables; StreamBoost with Prometheus (its own registry) and
OpenTelemetry on, batching off, so the difference is the counting receive/send plus the
per-connection observation. Prints microseconds per connection (a connection of no
messages) and per message pair (from the connection of N), medians of several rounds with the
contenders taking turns; never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from prometheus_client import CollectorRegistry

from streamboost import StreamBoost

ROUNDS = 15
Message = dict[str, Any]


def make_app(n: int) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        for _ in range(n):
            await receive()
            await send({"type": "websocket.send", "text": '{"type":"token"}'})
        await send({"type": "websocket.close", "code": 1000})

    return app


async def one_connection(app: Any, n: int) -> float:
    incoming: list[Message] = [{"type": "websocket.receive", "text": "x"}] * n
    incoming.append({"type": "websocket.connect"})

    async def receive() -> Message:
        return incoming.pop()

    async def send(message: Message) -> None:
        return None

    scope = {"type": "websocket", "path": "/ws", "headers": []}
    start = time.perf_counter()
    await app(scope, receive, send)
    return time.perf_counter() - start


async def timed(n: int) -> dict[str, float]:
    """Median seconds of one connection of ``n`` message pairs, per contender."""
    bare = make_app(n)
    contenders = {
        "bare": bare,
        "streamboost": StreamBoost(bare, registry=CollectorRegistry(), coalesce=False),
    }
    samples: dict[str, list[float]] = {label: [] for label in contenders}
    for app in contenders.values():
        await one_connection(app, n)  # warm up
    for _ in range(ROUNDS):
        for label, app in contenders.items():
            samples[label].append(await one_connection(app, n))
    return {label: statistics.median(s) for label, s in samples.items()}


async def main(n: int) -> None:
    empty, full = await timed(0), await timed(n)
    for label in empty:
        connection = empty[label] * 1e6
        message = (full[label] - empty[label]) / n * 1e6
        print(
            f"{label:12s} {connection:8.2f} us per connection, {message:6.3f} us per message pair"
        )
    added = (full["streamboost"] - empty["streamboost"] - full["bare"] + empty["bare"]) / n * 1e6
    print(
        f"added        {(empty['streamboost'] - empty['bare']) * 1e6:8.2f} us per connection, "
        f"{added:6.3f} us per message pair"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    asyncio.run(main(parser.parse_args().messages))
