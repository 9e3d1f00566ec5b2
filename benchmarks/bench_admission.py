"""What admission control costs a request admitted at once, in process (prints, asserts nothing).

    uv run python benchmarks/bench_admission.py [--requests N] [--redis redis://127.0.0.1:6379/0]

The same StreamBoost-wrapped ASGI app (a 4-event SSE stream, coalescing off, Prometheus on a
private registry, OpenTelemetry off) is driven directly, one request after the other, with
admission off, with a local limit, with a local limit and a route limit, and, given
``--redis``, with a shared limit (one Redis round trip per request on loopback). Best of 5
interleaved rounds per variant; per-request time and the difference to admission off. Then
the admission step alone (``Ticket.run`` around an app that does nothing), best of 15 rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

from prometheus_client import CollectorRegistry

from streamboost import AdmissionConfig, SharedLimit, StreamBoost
from streamboost._admission import Admission
from streamboost._stream import StreamRecord

CHUNK = b'data: {"choices":[{"delta":{"content":"tok"}}]}\n\n'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]})  # fmt: skip
    for _ in range(3):
        await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": CHUNK})


async def drive(boost: StreamBoost, requests: int) -> float:
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [],
             "query_string": b"", "root_path": "", "scheme": "http"}  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    started = time.perf_counter()
    for _ in range(requests):
        await boost(dict(scope), receive, send)
    return (time.perf_counter() - started) / requests


def variants(redis: str | None) -> dict[str, AdmissionConfig | None]:
    out: dict[str, AdmissionConfig | None] = {
        "off": None,
        "local limit": AdmissionConfig(limit=1000),
        "local + route limit": AdmissionConfig(
            limit=1000, route_limits={"/v1/chat/completions": 500, "/v1/embeddings": 10}
        ),
    }
    if redis is not None:
        key = f"streamboost:bench:admission:{uuid.uuid4().hex[:8]}"
        out["shared limit (Redis)"] = AdmissionConfig(
            limit=1000, shared=SharedLimit(url=redis, limit=1000, key=key)
        )
    return out


async def main(requests: int, redis: str | None) -> None:
    boosts = {
        name: StreamBoost(
            app, coalesce=False, otel=False, registry=CollectorRegistry(), admission=config
        )
        for name, config in variants(redis).items()
    }
    best = dict.fromkeys(boosts, float("inf"))
    for boost in boosts.values():
        await drive(boost, min(requests, 500))  # warm up
    for _ in range(5):
        for name, boost in boosts.items():
            best[name] = min(best[name], await drive(boost, requests))
    base = best["off"]
    print(f"{'variant':<24}{'us/request':>12}{'added us':>10}")
    for name, seconds in best.items():
        print(f"{name:<24}{seconds * 1e6:>12.2f}{(seconds - base) * 1e6:>10.2f}")


async def ticket_alone(requests: int) -> None:
    scope: dict[str, Any] = {"type": "http", "path": "/v1/chat/completions"}
    local = Admission(AdmissionConfig(limit=1000), metrics=False, registry=None)
    routed = Admission(
        AdmissionConfig(limit=1000, route_limits={"/v1/chat/completions": 500, "/x": 1}),
        metrics=False,
        registry=None,
    )
    record = StreamRecord(scope, 0.0)

    async def nothing() -> None:
        pass

    async def receive() -> dict[str, Any]:
        return {}

    async def send(message: Any) -> None:
        pass

    async def rounds(admission: Admission | None) -> float:
        started = time.perf_counter()
        for _ in range(requests):
            if admission is None:
                await nothing()
            else:
                ticket = admission.ticket(scope, receive, send)
                assert ticket is not None
                await ticket.run(record, nothing)
        return (time.perf_counter() - started) / requests

    best = {"none": float("inf"), "local": float("inf"), "routed": float("inf")}
    for _ in range(15):
        for name, admission in (("none", None), ("local", local), ("routed", routed)):
            best[name] = min(best[name], await rounds(admission))
    print(
        "admission step alone, admitted at once: "
        f"local limit {(best['local'] - best['none']) * 1e6:.2f} us, "
        f"with route limits {(best['routed'] - best['none']) * 1e6:.2f} us"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--redis", default=None, help="a Redis URL for the shared-limit row")
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.redis))
    asyncio.run(ticket_alone(args.requests * 4))
