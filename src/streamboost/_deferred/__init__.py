"""Deferred writes: ``defer()``, ``DeferredWriter``, ``delta_buffer`` and their lifespan glue."""

from ._config import DeferConfig, DeferredError, Entry, QueueFull, RetryPolicy, WriterClosed
from ._defer import configure_defer, defer, drain_deferred, export_defer_metrics
from ._delta import Delta, DeltaBuffer, delta_buffer
from ._lifespan import LifespanWriters, drain_all, lifespan_with_writers
from ._worker import main as worker_main
from ._worker import run_worker
from ._writer import DeferredWriter

__all__ = [
    "DeferConfig",
    "DeferredError",
    "DeferredWriter",
    "Delta",
    "DeltaBuffer",
    "Entry",
    "LifespanWriters",
    "QueueFull",
    "RetryPolicy",
    "WriterClosed",
    "configure_defer",
    "defer",
    "delta_buffer",
    "drain_all",
    "drain_deferred",
    "export_defer_metrics",
    "lifespan_with_writers",
    "run_worker",
    "worker_main",
]
