"""streamboost: fast, observable streaming for ASGI apps."""

from ._config import CoalesceConfig
from ._deferred import (
    DeferConfig,
    DeferredError,
    DeferredWriter,
    Delta,
    Entry,
    QueueFull,
    RetryPolicy,
    WriterClosed,
    configure_defer,
    defer,
    delta_buffer,
    drain_deferred,
)
from ._middleware import StreamBoost

__all__: list[str] = [
    "CoalesceConfig",
    "DeferConfig",
    "DeferredError",
    "DeferredWriter",
    "Delta",
    "Entry",
    "QueueFull",
    "RetryPolicy",
    "StreamBoost",
    "WriterClosed",
    "configure_defer",
    "defer",
    "delta_buffer",
    "drain_deferred",
]
