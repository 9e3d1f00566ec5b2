"""Run by test_install.py in a subprocess: streamboost with the OpenTelemetry API and no SDK.

``python tests/api_only_app.py --block`` hides ``opentelemetry.sdk`` (and the ASGI
instrumentation, which needs it) behind a meta-path blocker first; in a fresh virtualenv
holding only the wheel, uvicorn and httpx it runs without. Either way it serves a stream with
every default on (metrics, OpenTelemetry, coalescing), a phase, a cached dependency and a
deferred job on real uvicorn, reads it with httpx, scrapes ``/metrics``, and prints ``ok``.
It imports nothing from the test suite, so it runs outside a checkout.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import AsyncIterator, Sequence
from types import ModuleType

BLOCKED = ("opentelemetry.sdk", "opentelemetry.instrumentation")


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if any(fullname == name or fullname.startswith(name + ".") for name in BLOCKED):
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked)", name=fullname)
        return None


def main() -> None:
    if "--block" in sys.argv:
        sys.meta_path.insert(0, Blocker())
    try:
        sdk = importlib.util.find_spec("opentelemetry.sdk")
    except ModuleNotFoundError:
        sdk = None
    assert sdk is None, "the OpenTelemetry SDK is importable: this check needs the API alone"

    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    import streamboost
    from streamboost import Cache, StreamBoost, cached, defer, phase
    from streamboost._cli._loopback import uvicorn_in_thread

    cache = Cache("memory://", name="api_only")
    done: list[str] = []

    @cached(ttl=60, cache=cache)
    async def profile(user: str) -> str:
        return user.upper()

    async def audit(user: str) -> None:
        done.append(user)

    async def chat(request: Request) -> StreamingResponse:
        async with phase("profile"):
            name = await profile("ada")
        defer(audit, name)

        async def tokens() -> AsyncIterator[bytes]:
            for word in ("Hello", " ", name):
                await asyncio.sleep(0.005)
                yield f"data: {word}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(tokens(), media_type="text/event-stream")

    app = StreamBoost(Starlette(routes=[Route("/chat/stream", chat)]))
    with uvicorn_in_thread(app) as url:
        for _ in range(2):
            body = httpx.get(url + "/chat/stream", timeout=10).text
            assert body.count("data:") == 4 and "ADA" in body, body
        metrics = httpx.get(url + "/metrics", timeout=10).text
    ttft = 'streamboost_time_to_first_token_seconds_count{method="GET",route="/chat/stream"} 2.0'
    assert ttft in metrics, metrics
    assert 'streamboost_cache_requests_total{cache="api_only",result="hit"} 1.0' in metrics
    assert done == ["ADA", "ADA"], done  # drained at uvicorn's shutdown
    loaded = sorted(name for name in sys.modules if name.startswith(BLOCKED))
    assert not loaded, loaded
    print("ok", streamboost.__name__, repr(cache.stats))


if __name__ == "__main__":
    main()
