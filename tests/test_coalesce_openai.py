"""Optional merging of OpenAI chat.completion.chunk events (issue 2, coalescing point 8)."""

from __future__ import annotations

from typing import Any

import orjson
from tests.coalesce_apps import Records, openai, run_app, stream_app

from streamboost import CoalesceConfig, StreamBoost
from streamboost._stream._openai import merge_chunks


def chunks(body: bytes) -> list[Any]:
    return [
        block.removeprefix(b"data: ") if block == b"data: [DONE]" else orjson.loads(block[6:])
        for block in body.split(b"\n\n")
        if block
    ]


def contents(body: bytes) -> list[str | None]:
    return [
        c["choices"][0]["delta"].get("content") if isinstance(c, dict) else None
        for c in chunks(body)
    ]


def tool_call(index: int = 0) -> bytes:
    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [
            {
                "index": index,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]},
                "finish_reason": None,
            }
        ],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def choice(index: int, text: str) -> bytes:
    chunk = orjson.loads(openai(text)[6:])
    chunk["choices"][0]["index"] = index
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def test_consecutive_content_deltas_become_one_event() -> None:
    body = openai("Hel") + openai("lo") + openai(" world")
    merged = merge_chunks(body)
    assert contents(merged) == ["Hello world"]
    assert merged.endswith(b"\n\n")


def test_never_merged() -> None:
    body = (
        openai(role="assistant", content="")  # role change
        + openai("a")
        + openai("b")
        + tool_call()  # tool calls
        + openai("c")
        + openai(finish="stop")  # finish_reason
        + b'data: {"object":"chat.completion.chunk","choices":[],"usage":{"total_tokens":1}}\n\n'
        + b"data: {not json\n\n"
        + b"event: delta\n"
        + openai("d")  # an event with more than one data line
        + openai("e")
        + b"data: [DONE]\n\n"
    )
    merged = merge_chunks(body)
    ab = merged.split(b"\n\n")[1]
    assert orjson.loads(ab[6:])["choices"][0]["delta"]["content"] == "ab"
    # Everything else is byte for byte what the app sent.
    assert merged == body.replace(openai("a") + openai("b"), ab + b"\n\n")


def test_different_choices_are_not_merged() -> None:
    body = choice(0, "a") + choice(1, "b") + choice(1, "c") + choice(0, "d")
    merged = merge_chunks(body)
    assert [
        (c["choices"][0]["index"], c["choices"][0]["delta"]["content"]) for c in chunks(merged)
    ] == [(0, "a"), (1, "bc"), (0, "d")]


async def test_merging_through_the_middleware() -> None:
    words = [f"w{i} " for i in range(40)]
    steps = [(0.0, openai(role="assistant", content="")), (0.0, openai(words[0]))]
    steps += [(0.0, openai(word)) for word in words[1:]]
    steps += [(0.0, openai(finish="stop")), (0.0, b"data: [DONE]\n\n")]
    records = Records()
    app = StreamBoost(
        stream_app(steps),
        coalesce=CoalesceConfig(window=30, merge_openai=True),
        observers=[records],
    )
    recorded = await run_app(app)
    text = "".join(c or "" for c in contents(recorded.body))
    assert text == "".join(words)
    assert len(chunks(recorded.body)) < len(steps)
    assert records.ended[0].content_events == 40  # the app's events, counted before merging
