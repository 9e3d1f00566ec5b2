"""``ResponseSettings``: what every HTTP response of one ``StreamBoost`` shares."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from .._config import CoalesceConfig
from .._types import ASGIApp
from ._presets import StreamPreset
from ._record import Clock, StreamObserver, StreamRecord
from ._scanner import MetadataPredicate


@dataclass(frozen=True, slots=True)
class ResponseSettings:
    """What every response of one ``StreamBoost`` shares (built once by the middleware)."""

    app: ASGIApp
    clock: Clock
    coalesce: CoalesceConfig | None
    observers: Sequence[StreamObserver]
    finishing: Sequence[Callable[[StreamRecord], None]]
    opt_out_header: bytes
    preset: StreamPreset  # the stream format, with the app's metadata and critical names
    marked: StreamPreset | None  # ``auto`` only: for a body with a Vercel AI SDK header
    is_metadata: MetadataPredicate | None
    content_types: Collection[str]
    tokens: bool = False  # an exporter counts token usage: the scanner reads it
