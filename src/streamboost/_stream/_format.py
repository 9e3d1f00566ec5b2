"""What a response start says about its body, read once per response: the stream format.

The content type decides the stream format; a ``content-length`` or a non-identity
``content-encoding`` means the body is not scanned (a sized body, or compressed bytes). The
Vercel AI SDK's stream header marks a body of its protocol (``_presets``).
Content types repeat across responses, so their parse is cached.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, NamedTuple

from ._table import FORMAT_CHUNKS, FORMAT_LINES, FORMAT_SSE

_FORMATS: Final = {
    "text/event-stream": FORMAT_SSE,
    "application/x-ndjson": FORMAT_LINES,
    "application/jsonl": FORMAT_LINES,
    "text/plain": FORMAT_CHUNKS,
}

_MAX_CACHED: Final = 256  # distinct content-type values remembered (a client cannot add any)


class BodyKind(NamedTuple):
    media: str  # the media type, lower case, without parameters
    fmt: int  # the stream format (``_table.FORMAT_*``), 0 when not a stream StreamBoost reads
    scannable: bool  # no content-length, identity encoding
    opt_out: bool  # the opt-out header is present
    vercel: bool  # a Vercel AI SDK stream header is present


# Per content-type value, its kind when no other header changes it (the usual response start).
_kinds: dict[bytes, BodyKind] = {}


def stream_format(content_type: str) -> int:
    """The stream format of a ``content-type`` header value (0 when not a known stream)."""
    media = content_type.partition(";")[0].strip().lower()
    return _FORMATS.get(media, 0)


def body_kind(
    headers: Iterable[tuple[bytes, bytes]],
    opt_out_name: bytes,
    marks: tuple[bytes, ...] = (),
) -> BodyKind:
    """What the response start's ``headers`` say; ``marks``: header names that flag a body
    of the Vercel AI SDK's protocol (``BodyKind.vercel``)."""
    content_type = b""
    length = encoded = opt_out = vercel = False
    for name, value in headers:
        name = name.lower()
        if name == b"content-type":
            content_type = value
        elif name == b"content-length":
            length = True
        elif name == b"content-encoding":
            encoded = value.strip().lower() != b"identity"
        elif name == opt_out_name:
            opt_out = True
        elif name in marks:
            vercel = True
    kind = _kinds.get(content_type)
    if kind is None:
        media = content_type.decode("latin-1").partition(";")[0].strip().lower()
        kind = BodyKind(media, stream_format(media), True, False, False)
        if len(_kinds) < _MAX_CACHED:
            _kinds[content_type] = kind
    if length or encoded or opt_out or vercel:  # else the cached kind, as it is (no tuple made)
        return BodyKind(kind.media, kind.fmt, not length and not encoded, opt_out, vercel)
    return kind


def without(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[tuple[bytes, bytes]]:
    """``headers`` without any header called ``name`` (lower case)."""
    return [(n, v) for n, v in headers if n.lower() != name]
