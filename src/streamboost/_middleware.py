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
from ._deferred import DeferredWriter
from ._deferred._lifespan import lifespan_with_writers
from ._http import HTTPStream
from ._timing import DEFAULT_CLOCK, Clock, StreamObserver
from ._types import ASGIApp, Receive, Scope, Send
from ._websocket import WebSocketBatcher

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
        writers: ``DeferredWriter`` objects started after the app's lifespan startup and
            drained before its shutdown; work scheduled with ``defer()`` is drained there too.
        drain_timeout: seconds the shutdown drain may take; what cannot finish by then is
            logged by count (and writers' items go to their dead-letter store).
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
        writers: Sequence[DeferredWriter[Any]] = (),
        drain_timeout: float = 30.0,
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
        if drain_timeout <= 0:
            raise ValueError(f"drain_timeout={drain_timeout!r} must be > 0 seconds (default 30.0)")
        for writer in writers:
            if not isinstance(writer, DeferredWriter):
                raise TypeError(f"writers=[{writer!r}, ...]: each must be a DeferredWriter(...)")
        self.app = app
        self.coalesce = config
        self.writers: tuple[DeferredWriter[Any], ...] = tuple(writers)
        self.drain_timeout = drain_timeout
        self.observers: tuple[StreamObserver, ...] = tuple(observers)
        self.clock: Clock = clock or DEFAULT_CLOCK
        self.metadata_events = frozenset(metadata_events)
        # Encoded once here: the scanner compares raw bytes.
        self.metadata_names = frozenset(name.encode() for name in self.metadata_events)
        critical = config.critical_events if config is not None else ()
        self.critical_names = frozenset(name.encode() for name in critical)
        self.opt_out_header = opt_out_header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type == "http":
            await HTTPStream(self, scope, receive, send).run()
        elif scope_type == "lifespan":
            # Always through here, writers or not, so defer() work is drained at shutdown.
            await lifespan_with_writers(
                self.app,
                scope,
                receive,
                send,
                writers=self.writers,
                drain_timeout=self.drain_timeout,
            )
        elif scope_type == "websocket" and self.coalesce is not None and self.coalesce.websocket:
            await WebSocketBatcher(self.app, self.coalesce, scope, receive, send).run()
        else:
            await self.app(scope, receive, send)
