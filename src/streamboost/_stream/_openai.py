"""Merging of OpenAI ``chat.completion.chunk`` SSE events inside one write (opt-in).

Consecutive events that only add ``delta.content`` to the same choice of the same completion
become one event with the concatenated content. Never merged: role changes, tool calls, chunks
with a ``finish_reason``, ``usage`` or ``logprobs``, ``[DONE]``, events with fields other than
one ``data:`` line and ``id:`` lines, and anything that does not parse.

The merged event keeps the last ``id`` of the events it replaces, so a client's last event id
after it is what it would have been after them (a resume from it asks for what follows the
whole run). An id with a NUL is skipped, as a browser ignores it. A resumable stream's ids
are stamped below this, on the merged events (``_resume``).
"""

from __future__ import annotations

from typing import Any

import orjson

_CONTENT_ONLY = frozenset({"content"})


def _id_and_data(block: bytes) -> tuple[bytes | None, bytes] | None:
    """A block of one ``data:`` line and ``id`` lines: (its last usable id line, the data line)."""
    ident: bytes | None = None
    data: bytes | None = None
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            if data is not None:
                return None  # a multi-line data field: not a chunk we merge
            data = line
        elif line.startswith(b"id:") or line == b"id":
            if b"\0" not in line:
                ident = line
        else:
            return None
    return None if data is None else (ident, data)


def _content_delta(
    block: bytes,
) -> tuple[tuple[Any, ...], dict[str, Any], str, bytes | None] | None:
    """``(merge key, parsed chunk, content, id line)`` for a mergeable event block, else None."""
    ident = None
    if b"\n" in block:
        parts = _id_and_data(block)
        if parts is None:
            return None
        ident, block = parts
    if not block.startswith(b"data:") or b"chat.completion.chunk" not in block:
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
    return key, chunk, delta["content"], ident


def merge_chunks(body: bytes) -> bytes:
    """Merge consecutive content deltas of one choice in ``body`` (whole SSE events)."""
    if b"\r" in body:
        return body  # CRLF streams are passed as they are
    blocks = body.split(b"\n\n")
    out: list[bytes] = []
    run: list[tuple[bytes, dict[str, Any], str, bytes | None]] = []
    run_key: tuple[Any, ...] | None = None

    def close_run() -> None:
        if len(run) == 1:
            out.append(run[0][0])
        elif run:
            first = run[0][1]
            first["choices"][0]["delta"]["content"] = "".join(text for _, _, text, _ in run)
            merged = b"data: " + orjson.dumps(first)
            ident = None
            for *_, line in run:
                ident = line if line is not None else ident
            out.append(merged if ident is None else merged + b"\n" + ident)
        run.clear()

    last = len(blocks) - 1
    for position, block in enumerate(blocks):
        parsed = _content_delta(block) if position < last else None
        if parsed is None:
            close_run()
            run_key = None
            out.append(block)
            continue
        key, chunk, text, ident = parsed
        if key != run_key:
            close_run()
            run_key = key
        run.append((block, chunk, text, ident))
    close_run()
    return b"\n\n".join(out)
