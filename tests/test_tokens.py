"""Token usage: ``streamboost_tokens_total`` and ``gen_ai.client.token.usage``.

A simulated provider (OpenAI chat completions with ``stream_options.include_usage``, the
Responses API, Anthropic messages) wrapped in StreamBoost and served by real uvicorn; the
official openai SDK (and httpx for the Anthropic shape) reads it. Run with and without
coalescing here; the C kernel or the Python one as the environment says
(``STREAMBOOST_NO_EXTENSIONS=1``), and both twins' classify directly.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import pytest
from openai import OpenAI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from streamboost import StreamBoost
from streamboost._cli._loopback import uvicorn_in_thread
from streamboost._stream import _kernel
from streamboost._stream._table import CONTENT, FORMAT_LINES, FORMAT_SSE, GENERAL

MODEL = "sim-model-1"
USAGE = {
    "prompt_tokens": 11,
    "completion_tokens": 7,
    "total_tokens": 18,
    "prompt_tokens_details": {"cached_tokens": 3},
    "completion_tokens_details": {"reasoning_tokens": 2},
}


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = b"" if event is None else b"event: " + event.encode() + b"\n"
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def _chunk(delta: dict[str, Any], finish: str | None, usage: bool) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = None  # what include_usage puts on every chunk but the last
    return _sse(body)


async def _chat(request: Request) -> Response:
    body = await request.json()
    include = bool((body.get("stream_options") or {}).get("include_usage"))

    async def events() -> AsyncIterator[bytes]:
        yield _chunk({"role": "assistant", "content": ""}, None, include)
        for token in ("Hello", " world", "!"):
            yield _chunk({"content": token}, None, include)
        yield _chunk({}, "stop", include)
        if include:
            last = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": MODEL,
                "choices": [],
                "usage": USAGE,
            }
            yield _sse(last)
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def _response(status: str, usage: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "model": MODEL,
        "status": status,
        "output": [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }


async def _responses(request: Request) -> Response:
    async def events() -> AsyncIterator[bytes]:
        created = {"type": "response.created", "sequence_number": 0}
        yield _sse({**created, "response": _response("in_progress", None)}, "response.created")
        for i, token in enumerate(("Hi", " there")):
            delta = {
                "type": "response.output_text.delta",
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": token,
                "logprobs": [],
                "sequence_number": i + 1,
            }
            yield _sse(delta, "response.output_text.delta")
        usage = {
            "input_tokens": 20,
            "input_tokens_details": {"cached_tokens": 5},
            "output_tokens": 9,
            "output_tokens_details": {"reasoning_tokens": 4},
            "total_tokens": 29,
        }
        completed = {"type": "response.completed", "sequence_number": 3}
        yield _sse({**completed, "response": _response("completed", usage)}, "response.completed")

    return StreamingResponse(events(), media_type="text/event-stream")


async def _anthropic(request: Request) -> Response:
    async def events() -> AsyncIterator[bytes]:
        message = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sim",
            "content": [],
            "usage": {"input_tokens": 25, "cache_read_input_tokens": 10, "output_tokens": 1},
        }
        yield _sse({"type": "message_start", "message": message}, "message_start")
        block = {"type": "content_block_start", "index": 0}
        yield _sse({**block, "content_block": {"type": "text", "text": ""}}, block["type"])
        for token in ("Hel", "lo"):
            delta = {"type": "content_block_delta", "index": 0}
            yield _sse({**delta, "delta": {"type": "text_delta", "text": token}}, delta["type"])
        yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}
        yield _sse({**delta, "usage": {"output_tokens": 15}}, "message_delta")
        yield _sse({"type": "message_stop"}, "message_stop")

    return StreamingResponse(events(), media_type="text/event-stream")


async def _malformed(request: Request) -> Response:
    async def events() -> AsyncIterator[bytes]:
        yield _chunk({"content": "ok"}, None, False)
        yield b'data: {"usage": {"prompt_tokens": 5, \n\n'  # cut short: not JSON
        yield b'data: {"model": "m", "usage": {"prompt_tokens": "five", "x": [}}\n\n'
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


PROVIDER = Starlette(
    routes=[
        Route("/v1/chat/completions", _chat, methods=["POST"]),
        Route("/v1/responses", _responses, methods=["POST"]),
        Route("/anthropic", _anthropic, methods=["POST"]),
        Route("/malformed", _malformed, methods=["POST"]),
    ]
)


@contextmanager
def served(coalesce: bool, **options: Any) -> Iterator[tuple[str, CollectorRegistry]]:
    registry = CollectorRegistry()
    options.setdefault("otel", False)
    app = StreamBoost(PROVIDER, coalesce=coalesce, registry=registry, **options)
    with uvicorn_in_thread(app) as base_url:
        yield base_url, registry


def ended(registry: CollectorRegistry) -> int:
    """Streams the registry has seen end (observed after the last byte went out)."""
    return sum(
        int(sample.value)
        for family in registry.collect()
        if family.name == "streamboost_streams"
        for sample in family.samples
    )


def settle(registry: CollectorRegistry, streams: int) -> None:
    """Wait (bounded) until ``streams`` streams have been observed: the client can read the
    last byte before the server's task counts the stream."""
    deadline = time.monotonic() + 10
    while ended(registry) < streams and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ended(registry) == streams


def tokens(registry: CollectorRegistry, **labels: str) -> float | None:
    return registry.get_sample_value("streamboost_tokens_total", labels)


@pytest.mark.parametrize("coalesce", [True, False])
def test_chat_completions_usage_is_counted(coalesce: bool) -> None:
    with served(coalesce) as (base_url, registry):
        with OpenAI(base_url=base_url + "/v1", api_key="test", max_retries=0) as client:
            stream = client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = list(stream)
        # The client got every chunk, the usage one last, as the provider sent them.
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
            "Hello world!"
        )
        assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 11
        settle(registry, 1)
        route = "/v1/chat/completions"
        expected = {"prompt": 11, "completion": 7, "cached": 3, "reasoning": 2}
        for kind, value in expected.items():
            assert tokens(registry, route=route, model=MODEL, kind=kind) == value
        # Without include_usage the provider sends none, and nothing is counted.
        with OpenAI(base_url=base_url + "/v1", api_key="test", max_retries=0) as client:
            list(client.chat.completions.create(model=MODEL, messages=[], stream=True))
        settle(registry, 2)
        assert tokens(registry, route=route, model=MODEL, kind="prompt") == 11


@pytest.mark.parametrize("coalesce", [True, False])
def test_responses_api_usage_is_counted(coalesce: bool) -> None:
    with served(coalesce) as (base_url, registry):
        with OpenAI(base_url=base_url + "/v1", api_key="test", max_retries=0) as client:
            events = list(client.responses.create(model=MODEL, input="hi", stream=True))
        assert events[-1].type == "response.completed"
        settle(registry, 1)
        route = "/v1/responses"
        expected = {"prompt": 20, "completion": 9, "cached": 5, "reasoning": 4}
        for kind, value in expected.items():
            assert tokens(registry, route=route, model=MODEL, kind=kind) == value


@pytest.mark.parametrize("stream_format", ["auto", "anthropic"])
@pytest.mark.parametrize("coalesce", [True, False])
def test_anthropic_usage_is_counted(coalesce: bool, stream_format: str) -> None:
    # Under the "anthropic" preset usage is not critical (message_start carries it), yet the
    # kernel still leaves usage events to the scanner, which counts them.
    with served(coalesce, stream_format=stream_format) as (base_url, registry):
        for _ in range(2):
            with httpx.stream("POST", base_url + "/anthropic", json={}, timeout=10) as response:
                body = b"".join(response.iter_bytes())
            assert b"message_stop" in body
        settle(registry, 2)
        labels = {"route": "/anthropic", "model": "claude-sim"}
        # input 25 + cache reads 10; the last (cumulative) output count, not 1 + 15.
        assert tokens(registry, **labels, kind="prompt") == 2 * 35
        assert tokens(registry, **labels, kind="cached") == 2 * 10
        assert tokens(registry, **labels, kind="completion") == 2 * 15
        assert tokens(registry, **labels, kind="reasoning") is None


@pytest.mark.parametrize("coalesce", [True, False])
def test_malformed_usage_neither_counts_nor_breaks_the_stream(coalesce: bool) -> None:
    with served(coalesce) as (base_url, registry):
        with httpx.stream("POST", base_url + "/malformed", timeout=10) as response:
            body = b"".join(response.iter_bytes())
        assert response.status_code == 200
        assert body.endswith(b"data: [DONE]\n\n") and b'"five"' in body
        settle(registry, 1)
        text = httpx.get(base_url + "/metrics", timeout=10).text
        assert "streamboost_tokens_total{" not in text
        assert 'streamboost_streams_total{method="POST",outcome="completed"' in text


def test_tenant_label_and_its_cap() -> None:
    calls: list[str] = []

    def tenant(scope: dict[str, Any]) -> str | None:
        value = dict(scope["headers"]).get(b"x-tenant", b"").decode() or None
        calls.append(str(value))
        return value

    with served(True, tenant=tenant, max_series=2) as (base_url, registry):
        for name in ("acme", "acme", "globex", "initech", None):
            headers = {} if name is None else {"x-tenant": name}
            with httpx.stream("POST", base_url + "/anthropic", headers=headers, timeout=10) as r:
                b"".join(r.iter_bytes())
        settle(registry, 5)
        assert len(calls) == 5  # once per response
        labels = {"route": "/anthropic", "model": "claude-sim", "kind": "completion"}
        assert tokens(registry, **labels, tenant="acme") == 30
        assert tokens(registry, **labels, tenant="globex") == 15
        # Past max_series keys, every label of a new key is "overflow".
        over = {"route": "overflow", "model": "overflow", "kind": "completion"}
        assert tokens(registry, **over, tenant="overflow") == 30
        assert tokens(registry, **labels, tenant="initech") is None


def test_tenant_must_be_callable() -> None:
    with pytest.raises(TypeError, match="tenant='acme' must be a function"):
        StreamBoost(PROVIDER, tenant="acme", registry=CollectorRegistry(), otel=False)  # type: ignore[arg-type]


def test_tenant_or_not_is_one_label_set_per_registry() -> None:
    registry = CollectorRegistry()
    StreamBoost(PROVIDER, registry=registry, otel=False)
    with pytest.raises(ValueError, match="pass tenant= to both or neither"):
        StreamBoost(PROVIDER, registry=registry, otel=False, tenant=lambda scope: "a")


def test_opentelemetry_token_histogram() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    with served(False, otel=True, meter_provider=provider) as (base_url, registry):
        with OpenAI(base_url=base_url + "/v1", api_key="test", max_retries=0) as client:
            list(
                client.chat.completions.create(
                    model=MODEL,
                    messages=[],
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
        settle(registry, 1)
    data = reader.get_metrics_data()
    assert data is not None
    points = {
        dict(point.attributes)["gen_ai.token.type"]: (point.sum, dict(point.attributes))
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "gen_ai.client.token.usage"
        for point in metric.data.data_points
    }
    assert set(points) == {"input", "output"}
    assert points["input"][0] == 11 and points["output"][0] == 7
    assert points["input"][1]["gen_ai.response.model"] == MODEL
    assert points["input"][1]["http.route"] == "/v1/chat/completions"
    provider.shutdown()


TWINS = [_kernel.PyScanBase] + ([_kernel.ScanBase] if _kernel.NATIVE else [])


@pytest.mark.parametrize("twin", TWINS, ids=lambda t: t.__module__)
@pytest.mark.parametrize("fmt", [FORMAT_SSE, FORMAT_LINES])
def test_the_kernel_leaves_usage_events_to_the_general_path(twin: Any, fmt: int) -> None:
    scan = twin()
    scan.fmt, scan.fast, scan.pending = fmt, True, 0
    scan.metadata, scan.critical_names = frozenset(), None  # the direct path
    scan.content_names, scan.openai_chat = None, True  # the "auto" stream format
    frame = (lambda d: b"data: " + d + b"\n\n") if fmt == FORMAT_SSE else (lambda d: d + b"\n")
    assert scan.classify(frame(b'{"usage": {"prompt_tokens": 1}}')) == GENERAL
    assert scan.classify(frame(b'{"usage":null,"x":"y"}')) == CONTENT  # every chunk's null
    assert scan.classify(frame(b'{"usage":{},"x":"y"}')) == CONTENT
    assert scan.classify(frame(b'{"text":"the \\"usage\\": 3"}')) == CONTENT
    # As _has_value: the next key is looked for after the end of the last one.
    assert scan.classify(frame(b'{"a":"usage"usage": 1}')) == CONTENT
    assert scan.classify(frame(b'{"g":"usage","usage" : [1]}')) == GENERAL


_MULTIPROCESS_CHILD = """
import asyncio, sys
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from streamboost import StreamBoost
from tests.test_tokens import PROVIDER

app = StreamBoost(PROVIDER, registry=CollectorRegistry(), otel=False, coalesce=False)
sent = []

received = []

async def receive():
    if received:  # the app listens for a disconnect until its body ends
        await asyncio.Event().wait()
    received.append(1)
    return {"type": "http.request", "body": b"{}", "more_body": False}

async def send(message):
    sent.append(message)

scope = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
    "scheme": "http", "path": "/anthropic", "raw_path": b"/anthropic", "root_path": "",
    "query_string": b"", "headers": [], "server": ("127.0.0.1", 80),
}
for _ in range(2):
    received.clear()
    asyncio.run(app(scope, receive, send))
files = CollectorRegistry()
MultiProcessCollector(files, path=sys.argv[1])
labels = {"route": "/anthropic", "model": "claude-sim"}
for kind in ("prompt", "completion", "cached"):
    print(kind, files.get_sample_value("streamboost_tokens_total", {**labels, "kind": kind}))
"""


def test_multiprocess_counts_reach_the_worker_files(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    repo = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", _MULTIPROCESS_CHILD, str(tmp_path)],
        env=env,
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["prompt", "70.0", "completion", "30.0", "cached", "20.0"]
