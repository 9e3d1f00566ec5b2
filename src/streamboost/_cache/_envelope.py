"""The Redis entry: ``[FORMAT, namespace version, fresh_until, stale_until, delta, value]``.

Times are wall-clock (``time.time()``) so every process reads them alike; ``delta`` is the
load time XFetch scales its early refresh by. The value is the orjson payload itself, spliced
in so it is encoded once.
"""

from __future__ import annotations

from typing import Any

import orjson

# Bumped when the layout changes: entries of another layout read as misses and are reloaded.
FORMAT = 1


def pack(version: int, fresh_until: float, stale_until: float, delta: float, value: bytes) -> bytes:
    head = orjson.dumps([FORMAT, version, fresh_until, stale_until, delta])
    return head[:-1] + b"," + value + b"]"


def unpack(payload: bytes, version: int) -> tuple[float, float, float, Any] | None:
    """``(fresh_until, stale_until, delta, raw value)``, or None for another format or
    namespace version (an invalidated namespace) or a payload that is not an envelope."""
    try:
        fmt, stored_version, fresh_until, stale_until, delta, raw = orjson.loads(payload)
    except (ValueError, TypeError):
        return None
    if fmt != FORMAT or stored_version != version:
        return None
    return fresh_until, stale_until, delta, raw
