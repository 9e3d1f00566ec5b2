"""streamboost: fast, observable streaming for ASGI apps."""

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

__all__: list[str] = [
    "DeferConfig",
    "DeferredError",
    "DeferredWriter",
    "Delta",
    "Entry",
    "QueueFull",
    "RetryPolicy",
    "WriterClosed",
    "configure_defer",
    "defer",
    "delta_buffer",
    "drain_deferred",
]
