"""The one module that touches OpenTelemetry's tracer provider, and the active trace id.

``Tracers`` finds the tracer of the configured provider, else of the global one, each time a
span is to be written, so a provider installed after StreamBoost was built is still used;
``current_trace_id`` is the one trace-id helper (Prometheus exemplars read it from here).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

from opentelemetry import context as _context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.environment_variables import OTEL_PYTHON_TRACER_PROVIDER
from opentelemetry.trace import INVALID_SPAN, Span

SCOPE_NAME: Final = "streamboost"


def _context_getter() -> Callable[[], Context]:
    """``opentelemetry.context.get_current``, or, with the API's default runtime context (a
    ContextVar, chosen once at its import), that ContextVar's own ``get``: the same Context,
    two Python calls fewer per read (each response reads it up to three times)."""
    runtime = getattr(_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if type(runtime) is ContextVarsRuntimeContext and var is not None:
        getter: Callable[[], Context] = var.get
        return getter
    return _context.get_current


get_current: Final = _context_getter()
_NO_TRACING: Final = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
# ``get_tracer_provider()`` looks in os.environ on every call while no provider is set (~0.8
# us). The API's module global is what it returns once one is; read directly when it exists.
_GLOBAL_PROVIDER: Final = hasattr(trace, "_TRACER_PROVIDER")


class Tracers:
    """The tracer of ``provider`` (None: the global TracerProvider), or None while tracing is off.

    Tracing is off while the provider is the API's default (no SDK installed).
    """

    __slots__ = ("_cached", "_env_provider", "_provider", "_version")

    def __init__(self, provider: trace.TracerProvider | None, version: str) -> None:
        self._provider = provider
        self._version = version
        # An environment-configured provider is loaded by the API on the first
        # get_tracer_provider() call; only then is that call needed while none is set.
        self._env_provider = not _GLOBAL_PROVIDER or OTEL_PYTHON_TRACER_PROVIDER in os.environ
        # The provider last seen and its tracer (None: tracing is off), so a request costs an
        # identity check instead of an ABC isinstance.
        self._cached: tuple[trace.TracerProvider, trace.Tracer | None] | None = None

    def current(self) -> trace.Tracer | None:
        provider = self._provider
        if provider is None:
            if _GLOBAL_PROVIDER:
                provider = trace._TRACER_PROVIDER
            if provider is None:
                if not self._env_provider:
                    return None  # what the API's default ProxyTracerProvider means
                provider = trace.get_tracer_provider()
        cached = self._cached
        if cached is None or cached[0] is not provider:
            tracer = None
            if not isinstance(provider, _NO_TRACING):
                tracer = provider.get_tracer(SCOPE_NAME, self._version)
            cached = self._cached = (provider, tracer)
        return cached[1]


def current_trace_id() -> str | None:
    """The active span's trace id in hex, for exemplars; None outside a sampled trace."""
    current = get_current()
    if not current:  # an empty context, the usual case: no span to look up
        return None
    span = trace.get_current_span(current)
    if span is INVALID_SPAN:  # other entries, no span: no span context to read
        return None
    return sampled_trace_id(span)


def sampled_trace_id(span: Span) -> str | None:
    context = span.get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return format(context.trace_id, "032x")
