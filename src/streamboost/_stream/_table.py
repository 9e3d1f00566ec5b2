"""The names and numbers the fast-path kernel shares between C and Python: one table.

``_kernel`` builds its Python classes' ``__slots__`` from the field tuples, and ``_speedups``
(C) reads the constants from this module when it is imported, so neither side spells a number
the other must match. ``tests/test_kernel.py`` checks that the C types declare exactly these
fields.
"""

from __future__ import annotations

from typing import Final

# What ``ScanBase.classify`` says of one body chunk: GENERAL, or the whole events it holds,
# none critical, packed as ``events << EVENTS_SHIFT | content`` (content: the events of them
# that carry output tokens); at most CONTENT_MASK events, more are GENERAL's.
EVENTS_SHIFT: Final = 16
CONTENT_MASK: Final = (1 << EVENTS_SHIFT) - 1
GENERAL: Final = 0  # not sure: the scanner's general path decides
CONTENT: Final = 1 << EVENTS_SHIFT | 1  # one whole event that carries output tokens
OTHER: Final = 1 << EVENTS_SHIFT  # one whole event without output tokens (metadata, a comment)

# Stream formats (``ScanBase.fmt``), read from the response's content type.
FORMAT_SSE: Final = 1
FORMAT_LINES: Final = 2
FORMAT_CHUNKS: Final = 3

# What ``BatchBase.add`` asks of its caller, as bits.
BUFFERED: Final = 0  # nothing: the chunk waits in the batch
WAKE: Final = 1  # a flush is due (critical event, max_events or max_bytes reached)
FULL: Final = 2  # the buffer is at max_buffer_bytes: the app's send must wait for room
WRITE_NOW: Final = 4  # (Coalescer only) the chunk goes out at once, written by the caller

# What ``Sender.use`` switches the app's send to, once, at the response start.
MODE_GENERAL: Final = 0  # every message to the Python sender
MODE_DIRECT: Final = 1  # one-event chunks counted and handed to the server as they are
MODE_BATCH: Final = 2  # one-event chunks joining a waiting batch are buffered

# The inter-token gap buckets the record counts into (seconds, upper bounds; one count per
# bound plus +Inf): the bounds of ``streamboost_inter_token_gap_seconds``, fixed because C
# reads them here at import: at most 15 bounds (the C record's ``GAP_SLOTS`` is 16 counts).
GAP_BOUNDS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

RECORD_FIELDS: Final = (
    "app_at",
    "bytes_out",
    "chunks_in",
    "content_events",
    "events",
    "first_byte_at",
    "first_token_at",
    "gap_at",
    "gap_max",
    "gap_sum",
    "last_body_at",
    "last_token_at",
    "writes",
)
# Per-record arrays (C: a fixed array behind a read-only tuple property; Python: a list).
RECORD_ARRAYS: Final = ("gap_counts",)
SCAN_FIELDS: Final = (
    "content",
    "content_names",
    "critical",
    "critical_names",
    "events",
    "fast",
    "fmt",
    "metadata",
    "openai_chat",
    "partial",
    "pending",
)
BATCH_FIELDS: Final = (
    "due",
    "eager",
    "error",
    "inflight",
    "lag",
    "last_event",
    "last_write",
    "loop",
    "loop_clock",
    "max_buffer",
    "max_bytes",
    "max_events",
    "near",
    "partial",
    "pending_bytes",
    "quiet_gap",
    "ready",
    "ready_bytes",
    "ready_content",
    "ready_events",
    "wanted",
    "window",
    "write_now",
)
SENDER_FIELDS: Final = (
    "batch",
    "clock",
    "done",
    "general",
    "owner",
    "record",
    "scan",
    "server_send",
)
