"""Incremental event boundaries and event classification: the scanner's general path.

Three stream formats are understood:

- ``text/event-stream``: events end at a blank line, with LF, CRLF or CR line endings,
  mixed as the SSE spec allows (``\\n\\n``, ``\\r\\n\\r\\n``, ``\\r\\r``, ``\\n\\r\\n``...); a CR
  that ends a chunk ends its line (an LF starting the next chunk is the rest of that CRLF);
- ``application/x-ndjson`` and ``application/jsonl``: one event per ``\\n``-terminated line;
- ``text/plain``: every non-empty chunk is one event.

A chunk of whole events never gets here: ``ScanBase.classify`` (the kernel) answers for it,
and ``ScanBase.feed_fast`` for events split across chunks (a relay's reads, cut anywhere).
``EventScanner.feed`` takes the rest: critical events, token usage, CR line endings, and every
event when the app's own ``is_metadata`` test or a stream format preset's own test
(``_presets``: LangGraph, the Vercel AI SDK's line protocol) must see it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from . import _usage
from ._classify import _has_value, is_critical, is_sse_content
from ._kernel import ScanBase
from ._pyscan import join_unfinished
from ._table import FORMAT_CHUNKS, FORMAT_LINES, FORMAT_SSE

if TYPE_CHECKING:
    from ._record import StreamRecord

# Two line endings in a row (CRLF, LF, or a CR not followed by LF): a blank line.
_SSE_SPLIT: Final = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")

MetadataPredicate = Callable[[bytes], bool]
"""The app's own test: True for an event (raw bytes) that carries no output tokens."""

EventTest = Callable[[bytes], bool]
"""A stream format's own test of an event's raw bytes (``_presets``)."""


class EventScanner(ScanBase):
    """Finds event boundaries in a stream fed chunk by chunk, and classifies the events.

    After each ``feed`` the attributes ``events``, ``content`` and ``critical`` describe the
    events that the chunk completed (an event split across chunks counts with the chunk
    that ends it).
    """

    __slots__ = ("_is_metadata", "_protocol_content", "_protocol_critical", "usage_of")
    # and ScanBase's (C when built: _kernel): fmt, fast, pending, partial, events, content,
    # critical, metadata, critical_names, content_names, openai_chat

    def __init__(
        self,
        fmt: int,
        critical: frozenset[bytes] | None,
        metadata: frozenset[bytes],
        is_metadata: MetadataPredicate | None = None,
        content: frozenset[bytes] | None = None,
        openai_chat: bool = True,
        protocol_content: EventTest | None = None,
        protocol_critical: EventTest | None = None,
        usage_of: StreamRecord | None = None,
    ) -> None:
        """``critical=None``: nothing is coalesced, so critical events are not looked for.

        ``usage_of``: the record whose ``usage`` the events carrying token usage set (the
        kernel leaves those events to this path); None: usage is not read.

        ``is_metadata``: the app's own test of an event (its raw bytes) that would otherwise
        count as content; every event then takes this general path. ``content`` and
        ``openai_chat``: the stream format's rules the kernel applies too (``_classify``);
        ``protocol_content``/``protocol_critical``: a format's own tests of an event (or of
        a segment, for critical), which also send every event down this path.
        """
        self.fmt = fmt
        self.critical_names = critical  # event names and JSON types, encoded
        self.metadata = metadata
        self.content_names = content
        self.openai_chat = openai_chat
        self.fast = is_metadata is None and protocol_content is None and protocol_critical is None
        self._is_metadata = is_metadata
        self._protocol_content = protocol_content
        self._protocol_critical = protocol_critical
        self.partial = None  # an unfinished event's pieces
        self.pending = 0  # bytes of an event that has started but not yet ended
        self.events = 0
        self.content = 0
        self.critical = False
        self.usage_of = usage_of

    def feed(self, data: bytes) -> int:
        """Scan one chunk; return the length of its prefix that ends at an event boundary."""
        fmt = self.fmt
        if fmt == FORMAT_CHUNKS:
            self.events = 1 if data else 0
            self.content = 1 if data and self._is_content_line(data) else 0
            self.critical = False
            return len(data)
        if data:
            end = self.feed_fast(data)  # the kernel's, where it is sure
            if end >= 0:
                return end
        partial = self.partial
        if fmt == FORMAT_SSE:
            end = self._sse_boundary(data, partial)
        else:
            end = data.rfind(b"\n")
            if end >= 0:
                end += 1
        if end <= 0:
            return join_unfinished(self, data)
        if partial is not None:
            partial.append(data[:end])
            segment = b"".join(partial)
            self.partial = None
            self.pending = 0
        else:
            segment = data if end == len(data) else data[:end]
        if end < len(data):
            self.partial = [data[end:]]
            self.pending = len(data) - end
        self._count(segment)
        return end

    def _sse_boundary(self, data: bytes, partial: list[bytes] | None) -> int:
        """Where the last blank line in ``data`` ends (-1: none), with the unfinished event's
        last two bytes in view, since a boundary can straddle chunks."""
        lead = b"" if partial is None else partial[-1][-2:]
        if len(lead) == 1 and partial is not None and len(partial) > 1:
            lead = (partial[-2][-1:] + lead)[-2:]
        buf = lead + data if lead else data
        end = buf.rfind(b"\n\n")
        end = end + 2 if end >= 0 else -1
        if b"\r" in buf:
            # A line ending, then a CR: CR CR, LF CR, CRLF CR; an LF after that last CR makes
            # it a CRLF, and belongs to the boundary when it is here already.
            for pair in (b"\r\r", b"\n\r"):
                at = buf.rfind(pair)
                if at >= 0:
                    stop = at + 2
                    if stop < len(buf) and buf[stop] == 10:
                        stop += 1
                    if stop > end:
                        end = stop
        return end - len(lead) if end >= 0 else -1

    def _count(self, segment: bytes) -> None:
        names = self.critical_names
        self.critical = names is not None and (
            is_critical(segment, names, self.openai_chat)
            or (self._protocol_critical is not None and self._protocol_critical(segment))
        )
        record = self.usage_of
        if record is not None and _has_value(segment, b'"usage"'):
            record.usage = _usage.read(record.usage, segment, self.fmt == FORMAT_SSE)
        if self.fmt == FORMAT_LINES:
            if segment.count(b"\n") == 1:
                self.events = self.content = 1 if segment.strip() else 0  # blank: no event
                if self.content and not self._is_content_line(segment):
                    self.content = 0
            else:
                lines = [line for line in segment.split(b"\n") if line.strip()]
                self.events = len(lines)
                self.content = sum(1 for line in lines if self._is_content_line(line))
            return
        if segment.count(b"\n\n") == 1 and segment.endswith(b"\n\n") and b"\r" not in segment:
            self.events = 1
            self.content = 1 if self._is_content(segment) else 0
            return
        blocks = [block for block in _SSE_SPLIT.split(segment) if block.strip()]
        self.events = len(blocks)
        self.content = sum(1 for block in blocks if self._is_content(block))

    def _is_content(self, event: bytes) -> bool:
        if not is_sse_content(event, self.metadata, self.content_names, self.openai_chat):
            return False
        return self._is_content_line(event)

    def _is_content_line(self, line: bytes) -> bool:
        """A non-blank NDJSON line or text chunk (or an SSE event the built-in rules count):
        content unless the format's test or the app's says not."""
        if self._protocol_content is not None and not self._protocol_content(line):
            return False
        return self._is_metadata is None or not self._is_metadata(line)

    def end(self) -> None:
        """At the end of the body: classify the event the stream left unterminated, if any."""
        data = b"".join(self.partial) if self.partial is not None else b""
        self.partial = None
        self.pending = 0
        if not data.strip():
            self.events = self.content = 0
            self.critical = False
            return
        self._count(data + (b"\n\n" if self.fmt == FORMAT_SSE else b"\n"))
