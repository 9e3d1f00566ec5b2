"""The kernel's scanner base in Python: the twin of ``_speedups.ScanBase`` (see ``_kernel``).

``classify`` (is a chunk whole events, none critical, and how many carry output tokens) and
``feed_fast`` (the scanner's feed where the kernel is sure), with the fields they read and
set. It lives in its own module only to keep ``_kernel`` short.
"""

from __future__ import annotations

from ._classify import _has_value, is_critical, is_sse_content
from ._table import (
    CONTENT,
    CONTENT_MASK,
    EVENTS_SHIFT,
    FORMAT_CHUNKS,
    FORMAT_SSE,
    GENERAL,
    OTHER,
    SCAN_FIELDS,
)


class PyScanBase:
    """``EventScanner``'s format and rules, and the one-event test of the fast path."""

    __slots__ = SCAN_FIELDS

    fmt: int
    fast: bool  # False when the app's own is_metadata test must see every event
    pending: int  # bytes of an event that started in an earlier chunk
    metadata: frozenset[bytes]
    critical_names: frozenset[bytes] | None  # None: nothing is coalesced, so not asked
    content_names: frozenset[bytes] | None  # a protocol's only content events (None: any)
    openai_chat: bool  # the OpenAI chat completions rules apply
    partial: list[bytes] | None  # the unfinished event's pieces
    # Of the events the last chunk fed completed (an event split across chunks counts with
    # the chunk that ends it): how many, how many carry output tokens, any critical.
    events: int
    content: int
    critical: bool

    def feed_fast(self, data: bytes) -> int:
        """``EventScanner.feed(data)`` where the kernel is sure (no CR, no critical event, no
        token usage): the length of the prefix ending at an event boundary, the fields set as
        feed sets them; -1: not sure, nothing changed. ``data`` is non-empty."""
        fmt = self.fmt
        partial = self.partial
        if not self.fast or fmt == FORMAT_CHUNKS:
            return -1
        if fmt == FORMAT_SSE:
            # With a CR the line endings mix (CR CR, LF CR...): the general path finds them.
            if b"\r" in data or (partial is not None and partial[-1].endswith(b"\r")):
                return -1
            end = data.rfind(b"\n\n") + 2
            if end < 2:  # none here; one may straddle the chunks
                end = 1 if data[0] == 10 and partial is not None and partial[-1][-1] == 10 else 0
        else:
            end = data.rfind(b"\n") + 1
        if not end:
            return join_unfinished(self, data)
        if partial is not None:
            segment = b"".join([*partial, data[:end]])
        else:
            segment = data if end == len(data) else data[:end]
        pending, self.pending = self.pending, 0
        kind = self.classify(segment)
        if not kind:
            self.pending = pending
            return -1
        self.partial = [data[end:]] if end < len(data) else None
        self.pending = len(data) - end
        self.events = kind >> EVENTS_SHIFT
        self.content = kind & CONTENT_MASK
        self.critical = False
        return end

    def classify(self, body: bytes) -> int:
        """``GENERAL``, or when ``body`` is whole events, none critical: how many, and how
        many of them carry output tokens (``CONTENT``/``OTHER`` for one; several packed as
        ``events << EVENTS_SHIFT | content``). ``body`` is non-empty. (The C twin also keeps
        a memo of the last content chunk's shape, docs/architecture.md "The classify memo";
        its answers are these.)"""
        if not self.fast or self.pending:
            return GENERAL
        fmt = self.fmt
        if fmt == FORMAT_CHUNKS:
            return CONTENT  # every chunk is an event, never critical
        if fmt == FORMAT_SSE and b"\r" in body:
            # Lines that all end CRLF (sse-starlette's, Gemini's): the LF version's answer,
            # the same lines to the SSE spec and to the general path; mixed endings are its.
            crlf = body.count(b"\r\n")
            if crlf != body.count(b"\r") or crlf != body.count(b"\n"):
                return GENERAL
            body = body.replace(b"\r\n", b"\n")
        kind = _classify_event(self, body)
        if kind:
            return kind
        # Several whole events (a relay's read, an app's own batch): each as its own chunk.
        if fmt == FORMAT_SSE:
            if len(body) < 6 or not body.endswith(b"\n\n") or b"\r" in body:
                return GENERAL
            events = body.split(b"\n\n")
            end = b"\n\n"
        else:
            events = body.split(b"\n")
            end = b"\n"
        if events.pop() or len(events) < 2 or len(events) > CONTENT_MASK:
            return GENERAL  # the chunk ends inside an event, or holds one (or too many)
        content = 0
        for event in events:
            kind = _classify_event(self, event + end)
            if not kind:
                return GENERAL
            content += kind & CONTENT_MASK
        return len(events) << EVENTS_SHIFT | content


def _classify_event(scan: PyScanBase, body: bytes) -> int:
    """``CONTENT``/``OTHER`` when ``body`` is one whole, non-critical SSE or NDJSON event;
    else ``GENERAL``."""
    size = len(body)
    if scan.fmt == FORMAT_SSE:
        # One event: its only blank line ends the chunk; a CR may end lines early.
        if size < 3 or body.find(b"\n\n") != size - 2 or b"\r" in body or body.isspace():
            return GENERAL  # (blank: no event for the general path)
    elif body.find(b"\n") != size - 1 or not body.strip():
        return GENERAL  # an NDJSON chunk of one non-blank line
    critical = scan.critical_names
    if critical is not None and is_critical(body, critical, scan.openai_chat):
        return GENERAL
    if _has_value(body, b'"usage"'):
        return GENERAL  # token usage, coalesced or not: the scanner's general path reads it
    if scan.fmt != FORMAT_SSE or is_sse_content(
        body, scan.metadata, scan.content_names, scan.openai_chat
    ):
        return CONTENT
    return OTHER


def join_unfinished(scan: PyScanBase, data: bytes) -> int:
    """``data`` ends no event: it joins the unfinished event, and ``feed`` returns 0."""
    if data:
        partial = scan.partial
        if partial is None:
            scan.partial = [data]
        else:
            partial.append(data)
        scan.pending += len(data)
    scan.events = scan.content = 0
    scan.critical = False
    return 0
