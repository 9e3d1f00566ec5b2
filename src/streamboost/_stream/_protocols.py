"""The stream format tests that need a look inside an event's JSON (``_presets``).

They run on the scanner's general path, once per event, for the formats that use them:

- LangGraph server: only ``messages`` (``stream_mode="messages-tuple"``: ``[message,
  metadata]``) and ``messages/partial`` / ``messages/complete`` (``stream_mode="messages"``:
  a list of messages) events count, and only for an AI message with text or tool-call
  chunks; ``values``, ``updates``, ``metadata`` and the echo of a human or tool message do not.
  Subgraph events (``messages|node:id``) count like their root name.
- The Vercel AI SDK's older line protocol (``text/plain``, ``x-vercel-ai-data-stream: v1``):
  ``TYPE:JSON`` lines; text (``0``), reasoning (``g``), a tool call (``9``) or its streamed
  input (``c``) are content; a finish message (``d``) or an error (``3``) is critical.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

_LANGGRAPH_MESSAGES: Final = frozenset({b"messages", b"messages/partial", b"messages/complete"})
_AI_TYPES: Final = frozenset({"ai", "AIMessageChunk", "AIMessage"})
_FIELD: Final = re.compile(rb"^(event|data):[ ]?([^\r\n]*)", re.MULTILINE)

_VERCEL_CONTENT: Final = frozenset(b"0g9c")  # text, reasoning, tool call, tool call delta
_VERCEL_CRITICAL: Final = frozenset(b"d3")  # finish message, error
_VERCEL_EMPTY_TEXT: Final = frozenset({b'0:""', b'g:""'})


def _fields(event: bytes) -> tuple[bytes, bytes]:
    """An SSE event block's name (the first ``event:``) and its data lines, joined."""
    name = b""
    data: list[bytes] = []
    for match in _FIELD.finditer(event.replace(b"\r\n", b"\n").replace(b"\r", b"\n")):
        if match.group(1) == b"event":
            name = name or match.group(2).strip()
        else:
            data.append(match.group(2))
    return name, b"\n".join(data)


def _has_output(content: Any) -> bool:
    if isinstance(content, str):
        return bool(content)
    if isinstance(content, list):
        for block in content:
            if isinstance(block, str) and block:
                return True
            if isinstance(block, dict) and any(
                block.get(key) for key in ("text", "thinking", "partial_json", "input")
            ):
                return True
    return False


def _is_ai_output(message: Any) -> bool:
    if not isinstance(message, dict) or message.get("type") not in _AI_TYPES:
        return False
    return (
        _has_output(message.get("content"))
        or bool(message.get("tool_call_chunks"))
        or bool(message.get("tool_calls"))
    )


def langgraph_content(event: bytes) -> bool:
    """True for a LangGraph server event that carries an AI message's tokens."""
    name, data = _fields(event)
    root = name.partition(b"|")[0]
    if root not in _LANGGRAPH_MESSAGES:
        return False
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(payload, list) or not payload:
        return False
    messages = payload[:1] if root == b"messages" else payload  # a tuple: [message, metadata]
    return any(_is_ai_output(message) for message in messages)


def vercel_line_content(line: bytes) -> bool:
    """True for a Vercel AI SDK data stream line (v1) with text, reasoning or a tool call."""
    line = line.strip()
    return (
        len(line) > 2
        and line[1] == 58  # ':'
        and line[0] in _VERCEL_CONTENT
        and line not in _VERCEL_EMPTY_TEXT
    )


def vercel_line_critical(segment: bytes) -> bool:
    """True when a segment of v1 lines holds a finish message or an error."""
    return any(
        len(line) > 1 and line[1] == 58 and line[0] in _VERCEL_CRITICAL
        for line in segment.split(b"\n")
    )
