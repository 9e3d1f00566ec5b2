"""Errors raised by the cache: all subclass the builtin a caller would expect."""

from __future__ import annotations


class CacheValueTooLarge(ValueError):
    """A loaded value encodes to more bytes than the cache's ``max_value_bytes``."""


class UnsafeCacheKey(TypeError):
    """A cached function takes a per-request object (Request, headers, credentials...)."""
