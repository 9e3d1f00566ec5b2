"""``streamboost demo``: the example chat backend, naive vs boosted, side by side.

Each mode runs under real uvicorn on 127.0.0.1 in this process; a real httpx client streams
from it and measures time to first byte and first token as a user would see them. Writes per
stream are counted by an outermost ASGI wrapper that sees exactly what the server is asked to
write.
"""

from __future__ import annotations

import asyncio
import importlib
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from ._loopback import uvicorn_in_thread

ASGIApp = Any


def _import_example() -> tuple[Any, Any]:
    """Import ``examples.chat`` from the checkout this package runs from (or the cwd)."""
    here = Path(__file__).resolve()
    candidates = [Path.cwd(), *here.parents]
    for root in candidates:
        if (root / "examples" / "chat" / "app.py").is_file():
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            app_module = importlib.import_module("examples.chat.app")
            settings_module = importlib.import_module("examples.chat.settings")
            return app_module, settings_module
    raise SystemExit(
        "streamboost demo runs the example app in examples/chat/ of a streamboost checkout; "
        "run it from the repository root (uv run streamboost demo)"
    )


class WriteCounter:
    """Outermost ASGI layer: counts the non-empty body writes the server is asked to make."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.writes = 0
        self.responses = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                self.writes += 1
            elif message["type"] == "http.response.start":
                self.responses += 1
            await send(message)

        await self.app(scope, receive, counting_send)


@dataclass
class ModeResult:
    name: str
    ttfb: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    writes_per_stream: float = 0.0
    blocking_writes_per_stream: float = 0.0
    cache_hit_rate: float | None = None
    steps_ms: dict[str, float] = field(default_factory=dict)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _one_stream(client: Any, url: str, user: int, result: ModeResult) -> None:
    payload = {"user_id": f"user-{user}", "session_id": f"s-{user}", "message": "hi"}
    start = time.perf_counter()
    first_byte = first_token = None
    async with client.stream("POST", url, json=payload) as response:
        response.raise_for_status()
        buffer = b""
        async for chunk in response.aiter_raw():
            now = time.perf_counter()
            if first_byte is None:
                first_byte = now
            if first_token is None:
                buffer += chunk
                # The first content delta is the first token the user sees.
                if b'"content":"' in buffer.replace(b'"content":""', b""):
                    first_token = now
    end = time.perf_counter()
    result.ttfb.append((first_byte or end) - start)
    result.ttft.append((first_token or end) - start)
    result.total.append(end - start)


def _progress(label: str, done: int, total: int) -> None:
    if not sys.stderr.isatty():
        return  # a bar drawn with carriage returns is noise in CI logs
    width = 30
    filled = width * done // total
    sys.stderr.write(f"\r  {label:<28} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


async def _drive(
    url: str, result: ModeResult, requests: int, concurrency: int, users: int, *, show: bool = True
) -> None:
    import httpx

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        done = 0
        next_index = 0

        async def worker() -> None:
            nonlocal done, next_index
            while next_index < requests:
                index = next_index
                next_index += 1
                await _one_stream(client, url, index % users, result)
                done += 1
                if show:
                    _progress(result.name, done, requests)

        if show:
            _progress(result.name, 0, requests)
        await asyncio.gather(*(worker() for _ in range(concurrency)))


# The example's pre-stream steps: (phase name in the boosted app, backend call in the naive one).
STEPS = (("profile", "load_profile"), ("history", "load_history"), ("rag", "retrieval"))


def _phase_seconds(registry: CollectorRegistry | None) -> dict[str, float]:
    """Seconds per phase StreamBoost recorded (``streamboost_phase_duration_seconds``)."""
    if registry is None:
        return {}
    totals = {}
    for phase, _ in STEPS:
        labels = {"route": "/chat/stream", "phase": phase}
        value = registry.get_sample_value("streamboost_phase_duration_seconds_sum", labels)
        totals[phase] = value or 0.0
    return totals


def _cache_requests(registry: CollectorRegistry | None) -> dict[str, float]:
    """``streamboost_cache_requests_total`` by result, over every cache on ``registry``."""
    totals: dict[str, float] = {}
    if registry is None:
        return totals
    for family in registry.collect():
        if family.name == "streamboost_cache_requests":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    result = sample.labels["result"]
                    totals[result] = totals.get(result, 0.0) + sample.value
    return totals


def _wait_until_observed(registry: CollectorRegistry | None, streams: int) -> None:
    """StreamBoost observes a stream just after its last byte: let the warm-up ones land."""
    labels = {"route": "/chat/stream", "phase": STEPS[0][0]}
    for _ in range(200):  # bounded: 2 s at most
        if registry is None or (
            (registry.get_sample_value("streamboost_phase_duration_seconds_count", labels) or 0)
            >= streams
        ):
            return
        time.sleep(0.01)


def _run_mode(
    name: str,
    app: ASGIApp,
    backend: Any,
    requests: int,
    concurrency: int,
    warm_users: int,
    registry: CollectorRegistry | None = None,
) -> ModeResult:
    counter = WriteCounter(app)
    result = ModeResult(name)
    with uvicorn_in_thread(counter) as base:
        url = f"{base}/chat/stream"
        if warm_users:
            warm = ModeResult(name)
            asyncio.run(_drive(url, warm, warm_users, 1, warm_users, show=False))
        _wait_until_observed(registry, warm_users)
        backend.reset_counts()
        phases_before = _phase_seconds(registry)
        cache_before = _cache_requests(registry)
        counter.writes = counter.responses = 0
        asyncio.run(_drive(url, result, requests, concurrency, max(1, warm_users)))
        # The last streams are observed just after their last byte reached the client.
        _wait_until_observed(registry, warm_users + requests)
        streams = max(1, counter.responses)
        result.writes_per_stream = counter.writes / streams
        result.blocking_writes_per_stream = backend.calls["blocking_writes"] / streams
        if registry is not None:  # the boosted app's own cache metrics
            cache_after = _cache_requests(registry)
            delta = {k: v - cache_before.get(k, 0.0) for k, v in cache_after.items()}
            lookups = sum(delta.values())
            if lookups:
                result.cache_hit_rate = delta.get("hit", 0.0) / lookups
        if registry is None:  # the naive app: its steps are the backend calls it awaits in turn
            spent = {phase: backend.seconds[call] for phase, call in STEPS}
        else:  # the boosted app: what StreamBoost's phase timing saw (cache hits included)
            after = _phase_seconds(registry)
            spent = {phase: after[phase] - phases_before[phase] for phase, _ in STEPS}
        spent["inline writes (all)"] = backend.seconds["blocking_writes"]
        result.steps_ms = {step: 1000 * seconds / streams for step, seconds in spent.items()}
    return result


def _table(results: list[ModeResult]) -> str:
    def ms(value: float) -> str:
        return f"{1000 * value:8.1f} ms"

    rows: list[tuple[str, list[str]]] = [
        ("TTFT p50", [ms(statistics.median(r.ttft)) for r in results]),
        ("TTFT p95", [ms(_percentile(r.ttft, 0.95)) for r in results]),
        ("time to first byte p50", [ms(statistics.median(r.ttfb)) for r in results]),
        ("total time p50", [ms(statistics.median(r.total)) for r in results]),
        ("writes per stream", [f"{r.writes_per_stream:11.1f}" for r in results]),
        ("writes blocking the stream", [f"{r.blocking_writes_per_stream:11.1f}" for r in results]),
        (
            "cache hit rate",
            [
                "          -" if r.cache_hit_rate is None else f"{100 * r.cache_hit_rate:10.0f}%"
                for r in results
            ],
        ),
    ]
    rows.append(("where the time goes (mean):", ["" for _ in results]))
    for step in results[0].steps_ms:
        rows.append((f"  {step}", [ms(r.steps_ms.get(step, 0.0) / 1000) for r in results]))
    head = f"{'':32}" + "".join(f"{r.name:>22}" for r in results)
    lines = [head, "-" * len(head)]
    lines += [f"{label:32}" + "".join(f"{v:>22}" for v in values) for label, values in rows]
    return "\n".join(lines)


def run_demo(
    *,
    requests: int,
    concurrency: int,
    tokens: int,
    serve: bool = False,
    port: int = 8000,
    duration: float | None = None,
    load: bool = True,
) -> int:
    app_module, settings_module = _import_example()
    ChatSettings = settings_module.ChatSettings
    if serve:
        from ._demo_serve import serve_demo

        settings = ChatSettings(mode="boosted", max_tokens=tokens)
        return serve_demo(app_module, settings, port=port, duration=duration, load=load)
    results = []
    for label, settings, warm_users in (
        ("naive", ChatSettings(mode="naive", max_tokens=tokens), 0),
        ("boosted", ChatSettings(mode="boosted", max_tokens=tokens), 4),
        (
            "boosted, no retrieval",
            ChatSettings(mode="boosted", max_tokens=tokens, retrieval=False),
            4,
        ),
    ):
        registry = CollectorRegistry() if settings.mode == "boosted" else None
        app = app_module.create_app(settings, registry=registry)
        backend = app_module.backend_of(app)
        results.append(_run_mode(label, app, backend, requests, concurrency, warm_users, registry))
    model_ttft = ChatSettings().model_ttft
    print()
    print(
        f"streamboost demo: {requests} streams per mode, {concurrency} at once, "
        f"{tokens} tokens each; the simulated model's own TTFT is {1000 * model_ttft:.0f} ms"
    )
    print()
    print(_table(results))
    return 0
