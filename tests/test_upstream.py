"""upstream_client() and instrument_upstream(): the model's share of TTFT, end to end.

A simulated OpenAI-compatible provider (tests/upstream_apps.py) runs on real uvicorn; a
StreamBoost-wrapped app, also on real uvicorn, calls it with the official openai SDK through
the client under test; a real httpx client streams from the app. The records and the app's
/metrics must show the phase ``model`` (sent to the first token, at least the provider's delay
and less than the whole TTFT) and ``model_first_byte``; the pooled client must reuse its
connections, counted at the provider.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
from prometheus_client import CollectorRegistry
from tests.coalesce_apps import Records

from streamboost import instrument_upstream, upstream_client
from streamboost._cli._loopback import uvicorn_in_thread
from streamboost._stream import PhaseTiming, StreamRecord
from upstream_apps import DELAY, TOKENS, Provider, chat_app, hypercorn_tls, scrape

PHASE = "streamboost_phase_duration_seconds"
TTFT = "streamboost_time_to_first_token_seconds"


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[Provider, str]]:
    upstream = Provider()
    with uvicorn_in_thread(upstream) as url:
        yield upstream, url


def ended(records: Records, count: int) -> list[StreamRecord]:
    """The records of ``count`` finished streams (stream_ended may follow the last byte)."""
    deadline = time.monotonic() + 10
    while len(records.ended) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(records.ended) == count, records.ended
    return records.ended


def phases(record: StreamRecord) -> dict[str, PhaseTiming]:
    timings = record.phases or []
    by_name = {timing.name: timing for timing in timings}
    assert len(by_name) == len(timings), timings  # each phase once per request
    return by_name


def seconds(timing: PhaseTiming) -> float:
    return timing.ended_at - timing.started_at


def chat(base_url: str, path: str = "/chat/stream", model: str = "sim") -> str:
    response = httpx.post(base_url + path, json={"model": model}, timeout=30)
    assert response.status_code == 200, response.text
    return response.text


def assert_model_phase(record: StreamRecord) -> None:
    found = phases(record)
    assert set(found) == {"retrieval", "model_first_byte", "model"}, found
    model, first_byte, retrieval = found["model"], found["model_first_byte"], found["retrieval"]
    ttft = record.time_to_first_token()
    assert ttft is not None
    # The provider waits DELAY between its first byte and its first token.
    assert seconds(model) >= DELAY
    assert seconds(model) < ttft
    assert model.started_at == first_byte.started_at >= retrieval.ended_at
    assert first_byte.ended_at < model.ended_at
    assert record.first_token_at is not None and model.ended_at <= record.first_token_at


def test_model_phase_through_the_openai_sdk_and_metrics(provider: tuple[Provider, str]) -> None:
    upstream, url = provider
    before = len(upstream.peers)
    records = Records()
    app = chat_app(upstream_client(), url, CollectorRegistry(), records)
    streams = 4
    with uvicorn_in_thread(app) as base_url:
        for _ in range(streams):
            text = chat(base_url)
            assert text.count('"content"') == len(TOKENS) and text.endswith("data: [DONE]\n\n")
        for record in ended(records, streams):
            assert_model_phase(record)
        value = scrape(base_url)
    # Four sequential calls, one pooled keepalive connection.
    assert len(upstream.peers) - before == streams
    assert len(set(upstream.peers[before:])) == 1
    labels = {"route": "/chat/stream"}
    assert value(f"{PHASE}_count", phase="model", **labels) == streams
    assert value(f"{PHASE}_count", phase="model_first_byte", **labels) == streams
    model_sum = value(f"{PHASE}_sum", phase="model", **labels)
    assert model_sum >= streams * DELAY
    ttft_sum = value(f"{TTFT}_sum", method="POST", **labels)
    assert model_sum < ttft_sum
    assert value(f"{PHASE}_bucket", phase="model", le="+Inf", **labels) == streams


def test_pool_limits_bound_the_connections(provider: tuple[Provider, str]) -> None:
    upstream, url = provider
    records = Records()
    client = upstream_client(max_connections=2, max_keepalive_connections=2)
    app = chat_app(client, url, CollectorRegistry(), records)
    streams = 6
    with uvicorn_in_thread(app) as base_url:
        before = len(upstream.peers)

        async def load() -> list[str]:
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
                responses = await asyncio.gather(
                    *(http.post("/chat/stream", json={}) for _ in range(streams))
                )
            return [r.text for r in responses]

        texts = asyncio.run(load())
        assert all(t.count('"content"') == len(TOKENS) for t in texts)
        for record in ended(records, streams):
            assert_model_phase(record)
    peers = upstream.peers[before:]
    assert len(peers) == streams
    assert len(set(peers)) <= 2


def test_a_json_answer_ends_the_phase_at_its_body(provider: tuple[Provider, str]) -> None:
    _, url = provider
    records = Records()
    app = chat_app(upstream_client(first_byte=False), url, CollectorRegistry(), records)
    with uvicorn_in_thread(app) as base_url:
        assert "".join(TOKENS) in chat(base_url, "/chat/once")
        (record,) = ended(records, 1)
    found = phases(record)
    assert set(found) == {"retrieval", "model"}
    assert seconds(found["model"]) >= DELAY


def test_named_provider_events_before_the_first_token_are_not_tokens(
    provider: tuple[Provider, str],
) -> None:
    """Anthropic's message_start, content_block_start and ping come at once; the model's
    first token is the first content_block_delta, DELAY later."""
    _, url = provider
    records = Records()
    app = chat_app(upstream_client(), url, CollectorRegistry(), records)
    with uvicorn_in_thread(app) as base_url:
        assert chat(base_url, "/chat/anthropic").count("text_delta") == len(TOKENS)
        (record,) = ended(records, 1)
    found = phases(record)
    assert seconds(found["model"]) >= DELAY
    assert found["model_first_byte"].ended_at < found["model"].ended_at


def test_a_response_closed_before_a_token_ends_the_phase_then(
    provider: tuple[Provider, str],
) -> None:
    _, url = provider
    records = Records()
    app = chat_app(upstream_client(), url, CollectorRegistry(), records)
    with uvicorn_in_thread(app) as base_url:
        assert "gave up" in chat(base_url, "/chat/abandon")
        (record,) = ended(records, 1)
    found = phases(record)
    assert set(found) == {"model_first_byte", "model"}
    assert found["model_first_byte"].ended_at <= found["model"].ended_at
    assert record.first_token_at is not None and found["model"].ended_at < record.first_token_at


@pytest.mark.parametrize(
    "make",
    [httpx.AsyncClient, httpx2.AsyncClient, openai.DefaultAsyncHttpxClient],
    ids=["httpx", "httpx2", "openai-default"],
)
def test_instrument_an_existing_client(provider: tuple[Provider, str], make: Any) -> None:
    """The openai SDK takes an httpx.AsyncClient or an httpx2.AsyncClient (its own default
    client is a subclass of that) as http_client."""
    upstream, url = provider
    records = Records()
    client = make(timeout=30, headers={"x-app": "test"})
    assert instrument_upstream(client) is client
    with pytest.raises(ValueError, match="instrument it once"):
        instrument_upstream(client)
    app = chat_app(client, url, CollectorRegistry(), records)
    with uvicorn_in_thread(app) as base_url:
        for _ in range(2):
            chat(base_url)
        for record in ended(records, 2):
            assert_model_phase(record)
        value = scrape(base_url)
    assert value(f"{PHASE}_count", route="/chat/stream", phase="model") == 2
    assert len(set(upstream.peers[-2:])) == 1


def test_upstream_client_outside_a_request_times_nothing(provider: tuple[Provider, str]) -> None:
    _, url = provider

    async def call() -> tuple[int, str]:
        async with upstream_client(url) as client:
            response = await client.post("/v1/chat/completions", json={"stream": True})
            return response.status_code, type(response.stream).__name__

    status, stream_type = asyncio.run(call())
    assert status == 200
    assert stream_type != "FirstTokenWatcher"


async def read_stream(client: Any, model: str) -> str:
    body = {"stream": True, "model": model}
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        body_bytes: bytes = await response.aread()
        return body_bytes.decode()


def test_first_byte_timeout_is_split_from_the_read_timeout(provider: tuple[Provider, str]) -> None:
    """Headers SLOW s late pass a short read timeout when the first-byte timeout is long; a
    SLOW s silence after the first token does not; a short first-byte timeout stops them."""
    _, url = provider
    short = 0.2

    async def run() -> None:
        async with upstream_client(url, first_byte_timeout=30, read_timeout=short) as client:
            assert "[DONE]" in await read_stream(client, "slow-headers")
            with pytest.raises(httpx.ReadTimeout):
                await read_stream(client, "stall")
            # The request's own timeout wins over the first-byte timeout.
            with pytest.raises(httpx.ReadTimeout):
                await client.post(
                    "/v1/chat/completions",
                    json={"stream": True, "model": "slow-headers"},
                    timeout=httpx.Timeout(30, read=short * 1.5),
                )
        async with upstream_client(url, first_byte_timeout=short, read_timeout=30) as client:
            with pytest.raises(httpx.ReadTimeout):
                await read_stream(client, "slow-headers")
            assert "[DONE]" in await read_stream(client, "stall")
        # Without the split, httpx's one read timeout stops the slow headers as well.
        async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(30, read=short)) as plain:
            with pytest.raises(httpx.ReadTimeout):
                await read_stream(plain, "slow-headers")
        client = instrument_upstream(
            httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(30, read=short)),
            first_byte_timeout=30,
        )
        async with client:
            assert "[DONE]" in await read_stream(client, "slow-headers")

    asyncio.run(run())


def test_the_openai_sdk_keeps_the_split_timeouts(provider: tuple[Provider, str]) -> None:
    """The SDK sends every request with the client's timeout: the first-byte timeout still
    applies to its headers, and the read timeout to the gaps after them."""
    _, url = provider

    async def run() -> None:
        client = upstream_client(first_byte_timeout=30, read_timeout=0.2)
        async with openai.AsyncOpenAI(
            base_url=url + "/v1", api_key="sim", http_client=client, max_retries=0
        ) as sdk:
            messages: Any = [{"role": "user", "content": "hi"}]
            stream = await sdk.chat.completions.create(
                model="slow-headers", messages=messages, stream=True
            )
            assert [part async for part in stream]
            stream = await sdk.chat.completions.create(
                model="stall", messages=messages, stream=True
            )
            with pytest.raises(openai.APITimeoutError):
                _ = [part async for part in stream]

    asyncio.run(run())


def test_http2_multiplexes_concurrent_streams_on_one_connection(tmp_path: Path) -> None:
    """With h2 installed the client speaks HTTP/2 where the provider offers it (TLS, ALPN):
    concurrent streams share one connection, and the phases are recorded the same."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    upstream = Provider()
    records = Records()
    streams = 4
    with hypercorn_tls(upstream, certfile, keyfile) as url:
        client = upstream_client(verify=context, max_connections=streams)
        app = chat_app(client, url, CollectorRegistry(), records)
        with uvicorn_in_thread(app) as base_url:

            async def load() -> list[str]:
                async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
                    posts = [http.post("/chat/stream", json={}) for _ in range(streams)]
                    return [response.text for response in await asyncio.gather(*posts)]

            texts = asyncio.run(load())
            for record in ended(records, streams):
                assert_model_phase(record)
    assert all(text.count('"content"') == len(TOKENS) for text in texts)
    assert upstream.versions == ["2"] * streams
    assert upstream.connections() == 1


def test_http2_follows_h2() -> None:
    with pytest.raises(TypeError, match="True, False or None"):
        upstream_client(http2="yes")  # type: ignore[arg-type]
    code = (
        "import sys; sys.modules['h2'] = None\n"
        "import streamboost\n"
        "try:\n"
        "    streamboost.upstream_client(http2=True)\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "client = streamboost.upstream_client()\n"
        "print('http1 only' if client._transport._pool._http2 is False else 'http2')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "streamboost[http2]" in out.stdout and "http1 only" in out.stdout


def test_the_core_imports_without_httpx() -> None:
    code = (
        "import sys; sys.modules['httpx'] = None\n"
        "import streamboost\n"
        "try:\n"
        "    streamboost.upstream_client()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'streamboost[upstream]'" in out.stdout


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"connect_timeout": 0}, ValueError, r"connect_timeout=0 must be a number of seconds"),
        ({"first_byte_timeout": float("inf")}, ValueError, "first_byte_timeout=inf"),
        ({"read_timeout": True}, ValueError, "read_timeout=True"),
        ({"max_connections": 0}, ValueError, r"max_connections=0 must be an int >= 1"),
        ({"max_keepalive_connections": -1}, ValueError, "max_keepalive_connections=-1"),
        ({"phase": ""}, ValueError, "phase='' must be a non-empty phase name"),
        ({"first_byte": 1}, TypeError, "first_byte=1 must be True or False"),
        ({"base_url": 1}, TypeError, "base_url=1 must be a URL string"),
        ({"verify": "ca.pem"}, TypeError, r"verify='ca.pem' must be .* ssl\.SSLContext"),
    ],
)
def test_upstream_client_errors_name_the_value_and_the_fix(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        upstream_client(**kwargs)


def test_instrument_upstream_refuses_what_it_cannot_time() -> None:
    with pytest.raises(TypeError, match=r"use httpx\.AsyncClient inside an ASGI app"):
        instrument_upstream(httpx.Client())
    with pytest.raises(TypeError, match=r"use httpx2\.AsyncClient inside an ASGI app"):
        instrument_upstream(openai.DefaultHttpxClient())
    with pytest.raises(TypeError, match=r"takes an httpx\.AsyncClient"):
        instrument_upstream(object())
    with pytest.raises(ValueError, match="first_byte_timeout=-1"):
        instrument_upstream(httpx.AsyncClient(), first_byte_timeout=-1)


@pytest.mark.parametrize(
    ("heading", "target"),
    [
        ("### `upstream_client(", upstream_client),
        ("### `instrument_upstream(", instrument_upstream),
    ],
)
def test_readme_documents_the_options(
    heading: str, target: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README check of tests/test_readme.py, on these two tables."""
    from tests import test_readme

    monkeypatch.setitem(test_readme.DOCUMENTED, heading, target)
    test_readme.test_option_tables_match_the_signatures(heading)
