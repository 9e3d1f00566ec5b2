"""``StreamBoost``: one pure-ASGI layer where timing, coalescing and accounting share a send.

Per HTTP request it creates a ``StreamRecord`` (with the very scope dict the app receives),
fills it on the send path, and hands it to the observers: ``stream_started`` when the response
start goes out, ``stream_ended`` exactly once when the request is over (also after an error or
a disconnect; ``stream_started`` was not called when the app failed before its response start).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Collection, Sequence
from typing import Any, Final

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider
from prometheus_client import CollectorRegistry

from . import _checks
from ._admission import AdmissionConfig, build_admission
from ._config import CoalesceConfig
from ._deferred import DeferredWriter, export_defer_metrics
from ._deferred._lifespan import LifespanWriters
from ._detours import Guarded
from ._export import MetricBuckets, build_exporters
from ._export._tokens import check_tenant
from ._export._websockets import build_websocket_observers
from ._resume import ResumeConfig, build_resume
from ._stream import (
    DEFAULT_CLOCK,
    Clock,
    HTTPStream,
    ResponseSettings,
    StreamObserver,
    current_record,
)
from ._stream._presets import DEFAULT_METADATA_EVENTS, PRESETS, stream_preset
from ._types import ASGIApp, Receive, Scope, Send
from ._wsconn import WebSockets

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
        route: ``(scope) -> str | None``, the route template of a request, for apps that do not
            route the Starlette way (the ``streamboost-django``/``-litestar``/``-quart`` plugins
            provide one); called once per response after the app routed it; ``None`` or ``""``
            falls back to the built-in resolver (``unmatched`` when nothing routed).
        stream_format: the protocol of the app's streams, which decides what the first token
            is, which events are metadata or critical and whether merging applies:
            ``"auto"`` (default: OpenAI chat completions, the OpenAI Responses API and
            Anthropic Messages recognised by their event names, and the Vercel AI SDK by its
            header), ``"openai"``, ``"openai-responses"``, ``"anthropic"``, ``"langgraph"``,
            ``"vercel-ai"`` or ``"plain"`` (no protocol's rules).
        metadata_events: SSE ``event:`` names that never count as output tokens.
        is_metadata: the app's own test, ``(event: bytes) -> bool``, True for an event that
            carries no output tokens (an SSE event block, an NDJSON line or a text chunk, as
            raw bytes); applied to every event, after the built-in rules.
        opt_out_header: a response header that turns coalescing off for that response (or,
            on a ``websocket.accept``, batching for that connection); StreamBoost removes it
            before the response goes out.
        writers: ``DeferredWriter`` objects started after the app's lifespan startup and
            drained before its shutdown; work scheduled with ``defer()`` is drained there too.
        drain_timeout: seconds the shutdown drain may take; what cannot finish by then is
            logged by count (and writers' items go to their dead-letter store).
        metrics: export the ``streamboost_*`` Prometheus families.
        metrics_path: where StreamBoost serves them (None: no endpoint).
        metrics_port: also serve them on this port, from a thread (None: no extra server).
        metrics_host: the address ``metrics_port`` binds (default: loopback only).
        metrics_allow: client networks (CIDR) the ``metrics_path`` endpoint answers; others
            get 403 (None: any client).
        metrics_token: a bearer token the ``metrics_path`` endpoint requires; others get 401.
        registry: the prometheus_client registry (None: the default ``REGISTRY``).
        max_series: label sets per family before new ones are labelled ``overflow`` (status
            as its class, e.g. ``4xx``; phase as ``overflow``).
        otel: record OpenTelemetry metrics, and timing on the server span (or one span per
            request when a TracerProvider is configured).
        meter_provider, tracer_provider: None for OpenTelemetry's global providers.
        buckets: a ``MetricBuckets``: the latency histograms' buckets per family (None: the
            defaults, fine enough for true percentiles from 20 ms to 10 s); OpenTelemetry gets
            the changed ones as bucket advice (a View or exponential aggregation still wins).
        admission: an ``AdmissionConfig``: limit the requests running the app at once, queue
            or reject (429/503 with ``Retry-After``) the rest before the app runs (None: off).
        tenant: ``(scope) -> str | None``, a ``tenant`` label on ``streamboost_tokens_total``
            (and ``streamboost.tenant`` on ``gen_ai.client.token.usage``), called once per
            response that reported token usage; bounded by ``max_series`` (None: no label).
        resume: a ``ResumeConfig``: SSE responses get event ids and a Redis log, a client that
            reconnects with ``Last-Event-ID`` gets the rest from any process (None: off).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        coalesce: bool | CoalesceConfig = True,
        observers: Sequence[StreamObserver] = (),
        clock: Clock | None = None,
        route: Callable[[dict[str, Any]], str | None] | None = None,
        stream_format: str = "auto",
        metadata_events: Collection[str] = DEFAULT_METADATA_EVENTS,
        is_metadata: Callable[[bytes], bool] | None = None,
        opt_out_header: str = DEFAULT_OPT_OUT_HEADER,
        writers: Sequence[DeferredWriter[Any]] = (),
        drain_timeout: float = 30.0,
        metrics: bool = True,
        metrics_path: str | None = "/metrics",
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        metrics_allow: Collection[str] | None = None,
        metrics_token: str | None = None,
        registry: CollectorRegistry | None = None,
        max_series: int = 1000,
        otel: bool = True,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
        buckets: MetricBuckets | None = None,
        admission: AdmissionConfig | None = None,
        tenant: Callable[[dict[str, Any]], str | None] | None = None,
        resume: ResumeConfig | None = None,
    ) -> None:
        if coalesce is True:
            config: CoalesceConfig | None = CoalesceConfig()
        elif coalesce is False:
            config = None
        elif isinstance(coalesce, CoalesceConfig):
            config = coalesce
        else:
            raise TypeError(f"coalesce={coalesce!r} must be True, False or a CoalesceConfig(...)")
        preset = stream_preset(stream_format)
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
        if isinstance(app, StreamBoost):
            # Two layers would time every stream twice and split phases from their request.
            raise TypeError(
                f"app={app!r} is already wrapped in StreamBoost; wrap the inner app once and "
                "pass all options to that one StreamBoost(...)"
            )
        _checks.count("max_series", max_series, default=1000)
        _checks.count("metrics_port", metrics_port, default=9464, none=True)
        _checks.flag("metrics", metrics, default=True)
        _checks.flag("otel", otel, default=True)
        # Always through here, writers or not, so defer() work is drained at shutdown.
        self.lifespan = LifespanWriters(app, writers=writers, drain_timeout=drain_timeout)
        self.app = app
        self.coalesce = config
        self.clock: Clock = clock or DEFAULT_CLOCK
        self.exporters = build_exporters(
            metrics=metrics,
            metrics_path=metrics_path,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
            metrics_allow=metrics_allow,
            metrics_token=metrics_token,
            registry=registry,
            max_series=max_series,
            otel=otel,
            meter_provider=meter_provider,
            tracer_provider=tracer_provider,
            clock=self.clock,
            route=route,
            buckets=buckets,
            tenant=check_tenant(tenant),
        )
        if metrics:
            export_defer_metrics(registry)  # defer()'s counters next to the stream families
        observers = (*observers, *self.exporters.observers)
        # Called once, just before the last body message goes out (the record is final but for
        # the outcome): OpenTelemetry annotates a server span there, before the ASGI
        # instrumentation ends it.
        self.finishing = self.exporters.finishing
        self.metrics_app = self.exporters.metrics_app
        self._metrics_path = self.exporters.metrics_path
        if is_metadata is not None and not callable(is_metadata):
            raise TypeError(
                f"is_metadata={is_metadata!r} must be a function (event: bytes) -> bool, "
                'e.g. lambda event: b\'"type":"usage"\' in event'
            )
        self.is_metadata = is_metadata
        self.metadata_events = frozenset(metadata_events)
        # Encoded once here: the scanner compares raw bytes.
        self.metadata_names = frozenset(name.encode() for name in self.metadata_events)
        critical = config.critical_events if config is not None else ()
        self.critical_names = frozenset(name.encode() for name in critical)
        self.stream_format = stream_format
        marked = None
        if preset.name == "auto":  # a body with the Vercel AI SDK's header is of its protocol
            marked = PRESETS["vercel-ai"].with_names(self.metadata_names, self.critical_names)
        self.opt_out_header = opt_out_header.lower().encode("latin-1")
        # WebSocket scopes: counted and observed per connection, batched when configured.
        self.websocket = WebSockets(
            app,
            batching=config,
            observers=build_websocket_observers(
                metrics=metrics,
                registry=registry,
                otel=otel,
                meter_provider=meter_provider,
                max_series=max_series,
            ),
            route=route,
            clock=self.clock,
            opt_out_header=self.opt_out_header,
        )
        self.admission = build_admission(admission, metrics=metrics, registry=registry)
        self.resume = build_resume(resume)
        self._guarded = None
        if self.resume is not None or self.admission is not None:
            self._guarded = Guarded(self.resume, self.admission)
        self.responses = ResponseSettings(
            app=app,
            clock=self.clock,
            coalesce=config,
            observers=observers,
            finishing=tuple(self.finishing),
            opt_out_header=self.opt_out_header,
            preset=preset.with_names(self.metadata_names, self.critical_names),
            marked=marked,
            is_metadata=is_metadata,
            content_types=config.content_types if config is not None else frozenset(),
            tokens=metrics or otel,
        )

    @property
    def observers(self) -> tuple[StreamObserver, ...]:
        """Every response's observers: the ``observers`` option's, then the exporters'."""
        return tuple(self.responses.observers)

    @observers.setter
    def observers(self, observers: Sequence[StreamObserver]) -> None:
        self.responses = dataclasses.replace(self.responses, observers=tuple(observers))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._other(scope, receive, send)
            return
        metrics_app = self.metrics_app
        # The path's ending first: a str method, not a Python call, for every other request.
        if (
            metrics_app is not None
            and scope["path"].endswith(self._metrics_path)
            and self.exporters.serves(scope)
        ):
            await metrics_app(scope, receive, send)
            return
        if self._guarded is not None:  # resume, admission: steps before and after the app's
            await self._guarded(self.responses, scope, receive, send)
            return
        # The usual request: HTTPStream.run's steps, taken here, so that an open stream holds
        # this one coroutine frame and not a second one for run().
        stream = HTTPStream(self.responses, scope, receive, send)
        # For phase() inside the app; set back by value, so no Token lives as long as the stream.
        outer = current_record.get()
        current_record.set(stream.record)
        try:
            await self.app(scope, stream, stream.kernel.send)
        except asyncio.CancelledError:
            if stream.cancelled():
                raise
        except Exception as exc:
            await stream.failed(exc)
            raise
        else:
            pending = stream.returned()
            if pending is not None:
                await pending
        finally:
            if stream.stall_end is not None:
                await stream.end_stalled()
            stream.ended()
            current_record.set(outer)

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type == "lifespan":
            await self.lifespan(scope, receive, send)
        elif scope_type == "websocket":
            await self.websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)
