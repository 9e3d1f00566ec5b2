"""Merging of OpenAI ``chat.completion.chunk`` SSE events inside one write (opt-in).

Consecutive events that only add ``delta.content`` to the same choice of the same completion
become one event with the concatenated content. Never merged: role changes, tool calls, chunks
with a ``finish_reason``, ``usage`` or ``logprobs``, ``[DONE]``, events with fields other than
one ``data:`` line, and anything that does not parse.
"""

from __future__ import annotations

from typing import Any

import orjson

_CONTENT_ONLY = frozenset({"content"})


def _content_delta(block: bytes) -> tuple[tuple[Any, ...], dict[str, Any], str] | None:
    """``(merge key, parsed chunk, content)`` for a mergeable event block, else None."""
    if not block.startswith(b"data:") or b"\n" in block or b"chat.completion.chunk" not in block:
        return None
    try:
        chunk = orjson.loads(block[5:])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(chunk, dict) or chunk.get("object") != "chat.completion.chunk":
        return None
    choices = chunk.get("choices")
    if chunk.get("usage") is not None or not isinstance(choices, list) or len(choices) != 1:
        return None
    choice = choices[0]
    if not isinstance(choice, dict):
        return None
    delta = choice.get("delta")
    if (
        choice.get("finish_reason") is not None
        or choice.get("logprobs") is not None
        or not isinstance(delta, dict)
        or delta.keys() != _CONTENT_ONLY
        or not isinstance(delta["content"], str)
    ):
        return None
    key = (
        chunk.get("id"),
        chunk.get("model"),
        chunk.get("system_fingerprint"),
        choice.get("index"),
        frozenset(chunk) | frozenset(choice),
    )
    return key, chunk, delta["content"]


def merge_chunks(body: bytes) -> bytes:
    """Merge consecutive content deltas of one choice in ``body`` (whole SSE events)."""
    if b"\r" in body:
        return body  # CRLF streams are passed as they are
    blocks = body.split(b"\n\n")
    out: list[bytes] = []
    run: list[tuple[bytes, dict[str, Any], str]] = []
    run_key: tuple[Any, ...] | None = None

    def close_run() -> None:
        if len(run) == 1:
            out.append(run[0][0])
        elif run:
            first = run[0][1]
            first["choices"][0]["delta"]["content"] = "".join(text for _, _, text in run)
            out.append(b"data: " + orjson.dumps(first))
        run.clear()

    last = len(blocks) - 1
    for position, block in enumerate(blocks):
        parsed = _content_delta(block) if position < last else None
        if parsed is None:
            close_run()
            run_key = None
            out.append(block)
            continue
        key, chunk, text = parsed
        if key != run_key:
            close_run()
            run_key = key
        run.append((block, chunk, text))
    close_run()
    return b"\n\n".join(out)
