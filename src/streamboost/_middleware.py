"""``StreamBoost``: one pure-ASGI layer where timing, coalescing and accounting share a send.

Per HTTP request it creates a ``StreamRecord`` (with the very scope dict the app receives),
fills it on the send path, and hands it to the observers: ``stream_started`` when the response
start goes out, ``stream_ended`` exactly once when the request is over (also after an error or
a disconnect; ``stream_started`` was not called when the app failed before its response start).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Final

from ._config import CoalesceConfig
from ._http import HTTPStream
from ._timing import DEFAULT_CLOCK, Clock, StreamObserver
from ._websocket import WebSocketBatcher

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Any

DEFAULT_METADATA_EVENTS: Final = ("metadata", "ping", "heartbeat", "keepalive")
DEFAULT_OPT_OUT_HEADER: Final = "x-streamboost-opt-out"


class StreamBoost:
    """Wrap an ASGI app: coalesce its stream writes and time every response.

    Args:
        app: the ASGI application to wrap.
        coalesce: ``True`` (default rules), a ``CoalesceConfig``, or ``False`` to forward every
            chunk as the app sends it (timing and accounting still happen).
        observers: receive each response's ``StreamRecord`` (exporters implement these).
        clock: a ``() -> float`` seconds clock for the record's timestamps
            (default ``time.perf_counter``).
        metadata_events: SSE ``event:`` names that never count as output tokens.
        opt_out_header: a response header that turns coalescing off for that response;
            StreamBoost removes it before the response goes out.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        coalesce: bool | CoalesceConfig = True,
        observers: Sequence[StreamObserver] = (),
        clock: Clock | None = None,
        metadata_events: Collection[str] = DEFAULT_METADATA_EVENTS,
        opt_out_header: str = DEFAULT_OPT_OUT_HEADER,
    ) -> None:
        if coalesce is True:
            config: CoalesceConfig | None = CoalesceConfig()
        elif coalesce is False:
            config = None
        elif isinstance(coalesce, CoalesceConfig):
            config = coalesce
        else:
            raise TypeError(f"coalesce={coalesce!r} must be True, False or a CoalesceConfig(...)")
        if isinstance(metadata_events, str):
            raise ValueError(
                f"metadata_events={metadata_events!r} must be a collection of event names, "
                "e.g. ('metadata', 'ping')"
            )
        if not opt_out_header or opt_out_header != opt_out_header.strip():
            raise ValueError(
                f"opt_out_header={opt_out_header!r} must be a header name, "
                f"e.g. {DEFAULT_OPT_OUT_HEADER!r}"
            )
        self.app = app
        self.coalesce = config
        self.observers: tuple[StreamObserver, ...] = tuple(observers)
        self.clock: Clock = clock or DEFAULT_CLOCK
        self.metadata_events = frozenset(metadata_events)
        # Encoded once here: the scanner compares raw bytes.
        self.metadata_names = frozenset(name.encode() for name in self.metadata_events)
        critical = config.critical_events if config is not None else ()
        self.critical_names = frozenset(name.encode() for name in critical)
        self.opt_out_header = opt_out_header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        scope_type = scope["type"]
        if scope_type == "http":
            await HTTPStream(self, scope, receive, send).run()
        elif scope_type == "websocket" and self.coalesce is not None and self.coalesce.websocket:
            await WebSocketBatcher(self.app, self.coalesce, scope, receive, send).run()
        else:
            await self.app(scope, receive, send)
