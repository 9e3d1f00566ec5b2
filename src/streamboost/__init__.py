"""streamboost: fast, observable streaming for ASGI apps."""

from ._admission import AdmissionConfig, SharedLimit
from ._cache import (
    Cache,
    CachedCall,
    CachedFunction,
    CacheValueTooLarge,
    UnsafeCacheKey,
    cached,
)
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
from ._export import MetricBuckets
from ._middleware import StreamBoost
from ._phases import gather_phases, phase
from ._resume import ResumeConfig
from ._upstream import instrument_upstream, upstream_client

__all__: list[str] = [
    "AdmissionConfig",
    "Cache",
    "CacheValueTooLarge",
    "CachedCall",
    "CachedFunction",
    "CoalesceConfig",
    "DeferConfig",
    "DeferredError",
    "DeferredWriter",
    "Delta",
    "Entry",
    "MetricBuckets",
    "QueueFull",
    "ResumeConfig",
    "RetryPolicy",
    "SharedLimit",
    "StreamBoost",
    "UnsafeCacheKey",
    "WriterClosed",
    "cached",
    "configure_defer",
    "defer",
    "delta_buffer",
    "drain_deferred",
    "gather_phases",
    "instrument_upstream",
    "phase",
    "upstream_client",
]
