"""A simulated LLM that streams OpenAI ``chat.completion.chunk`` events as SSE."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson

WORDS = (
    "Streaming keeps the first token close and the rest flowing; batching the writes keeps "
    "the server cool while the reader sees no difference."
).split(" ")


def _chunk(completion_id: str, created: int, delta: dict[str, object], finish: str | None) -> bytes:
    body = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": "sim-1",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


async def generate(
    prompt: str, *, ttft: float, tokens_per_second: float, max_tokens: int
) -> AsyncIterator[bytes]:
    """Yield one SSE event per token: role chunk, content chunks, finish chunk, the usage
    chunk (as OpenAI sends it with ``stream_options={"include_usage": true}``), ``[DONE]``.

    The first content token comes ``ttft`` seconds after the call; later ones are paced at
    ``tokens_per_second`` against a fixed schedule, so pacing does not drift.
    """
    completion_id = f"chatcmpl-{abs(hash(prompt)) % 10**8}"
    created = int(time.time())
    yield _chunk(completion_id, created, {"role": "assistant", "content": ""}, None)
    start = time.perf_counter()
    interval = 1.0 / tokens_per_second
    for index in range(max_tokens):
        due = start + ttft + index * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        word = WORDS[index % len(WORDS)]
        yield _chunk(completion_id, created, {"content": word + " "}, None)
    yield _chunk(completion_id, created, {}, "stop")
    usage = {
        "prompt_tokens": len(prompt.split()),
        "completion_tokens": max_tokens,
        "total_tokens": len(prompt.split()) + max_tokens,
    }
    final = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": "sim-1",
        "choices": [],
        "usage": usage,
    }
    yield b"data: " + orjson.dumps(final) + b"\n\n"
    yield b"data: [DONE]\n\n"
