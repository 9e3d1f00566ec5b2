"""Cached dependencies: ``@cached`` functions backed by a memory, Redis or tiered ``Cache``."""

from ._cache import Cache, CachedCall
from ._cached import CachedFunction, cached
from ._errors import CacheValueTooLarge, UnsafeCacheKey

__all__ = [
    "Cache",
    "CacheValueTooLarge",
    "CachedCall",
    "CachedFunction",
    "UnsafeCacheKey",
    "cached",
]
