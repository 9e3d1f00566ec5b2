"""The event classifiers: is an event critical, does an SSE event carry output tokens.

The kernel's one-event test and the scanner's general path both ask these; ``_speedups.c``
has their C twin, and ``tests/test_kernel.py`` checks the two agree. What a stream format
preset (``_presets``) changes reaches them as arguments read once per response: the names of
the content events, and whether the OpenAI chat completions rules apply.
"""

from __future__ import annotations

import re
from typing import Final

# At the start of a line, whichever line ending (LF, CRLF, CR) ended the one before.
_EVENT_NAME: Final = re.compile(rb"(?:^|(?<=[\r\n]))event:[ ]?([^\r\n]*)")
_JSON_TYPE: Final = re.compile(rb'"type"\s*:\s*"([^"\\]*)"')
_NOT_NULL_AFTER: Final = re.compile(rb'\s*:\s*+(?!null|""|\{\}|\[\])')


def _has_value(data: bytes, key: bytes) -> bool:
    """True when some ``key`` (a quoted JSON key) in ``data`` has a non-null, non-empty value."""
    start = data.find(key)
    while start >= 0:
        if _NOT_NULL_AFTER.match(data, start + len(key)):
            return True
        start = data.find(key, start + len(key))
    return False


def is_critical(segment: bytes, names: frozenset[bytes], openai_chat: bool = True) -> bool:
    """True when ``segment`` holds an event that must be written at once.

    Critical: an SSE ``event:`` name or a JSON ``"type"`` value in ``names``, ``[DONE]``, and
    (``openai_chat``) OpenAI chunks that carry a ``finish_reason`` or ``usage``.
    """
    if b"event:" in segment:
        for match in _EVENT_NAME.finditer(segment):
            if match.group(1).strip() in names:
                return True
    if b'"type"' in segment:
        for match in _JSON_TYPE.finditer(segment):
            if match.group(1) in names:
                return True
    if b"[DONE]" in segment:
        return True
    return openai_chat and (
        _has_value(segment, b'"finish_reason"') or _has_value(segment, b'"usage"')
    )


def is_sse_content(
    event: bytes,
    metadata: frozenset[bytes],
    content: frozenset[bytes] | None = None,
    openai_chat: bool = True,
) -> bool:
    """True when one SSE event block carries output tokens.

    Not content: comments and pings, events without data, events whose ``event:`` name is in
    ``metadata``, ``data: [DONE]``, and (``openai_chat``) OpenAI ``chat.completion.chunk``
    events without delta content or tool calls (the role-only first chunk, the finish chunk,
    usage chunks). With ``content`` (a protocol's content events), only an event whose name is
    in it counts: its ``event:`` name or, without one, its first JSON ``"type"`` value.
    """
    if b"data:" not in event:
        return False  # comment-only blocks, bare ``event:``/``id:``/``retry:`` blocks
    name = None
    if b"event:" in event:
        match = _EVENT_NAME.search(event)
        if match is not None:
            name = match.group(1).strip()
            if name in metadata:
                return False
    if content is not None:
        if name is None:
            typed = _JSON_TYPE.search(event)
            if typed is None:
                return False
            name = typed.group(1)
        if name not in content:
            return False
    if b"[DONE]" in event and event.split(b"data:", 1)[1].strip() == b"[DONE]":
        return False
    if openai_chat and b'"chat.completion.chunk"' in event:
        return _has_value(event, b'"content"') or _has_value(event, b'"tool_calls"')
    return bool(event.split(b"data:", 1)[1].strip())
