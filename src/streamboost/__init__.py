"""streamboost: fast, observable streaming for ASGI apps."""

from ._cache import (
    Cache,
    CachedCall,
    CachedFunction,
    CacheValueTooLarge,
    UnsafeCacheKey,
    cached,
)

__all__: list[str] = [
    "Cache",
    "CacheValueTooLarge",
    "CachedCall",
    "CachedFunction",
    "UnsafeCacheKey",
    "cached",
]
