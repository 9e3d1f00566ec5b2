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
from ._middleware import StreamBoost
from ._phases import gather_phases, phase

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
    "QueueFull",
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
    "phase",
]
