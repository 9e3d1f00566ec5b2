"""The Redis entry: ``[FORMAT, namespace version, fresh_until, stale_until, delta, value]``.

Times are wall-clock (``time.time()``) so every process reads them alike; ``delta`` is the
load time XFetch scales its early refresh by. The value is the orjson payload itself, spliced
in so it is encoded once.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

# Bumped when the layout changes: entries of another layout read as misses and are reloaded.
# 2: keys tag every argument's type; entries stored under the untyped keys of 1 are not read.
FORMAT = 2


def pack(version: int, fresh_until: float, stale_until: float, delta: float, value: bytes) -> bytes:
    head = orjson.dumps([FORMAT, version, fresh_until, stale_until, delta])
    return head[:-1] + b"," + value + b"]"


def _time(value: Any) -> float:
    if (type(value) is not float and type(value) is not int) or not math.isfinite(value):
        raise ValueError(f"envelope time {value!r} is not a finite number")
    return float(value)


def unpack(payload: bytes, version: int) -> tuple[float, float, float, Any] | None:
    """``(fresh_until, stale_until, delta, raw value)``, or None for another format or
    namespace version (an invalidated namespace).

    Raises ValueError for anything else: a payload anyone could have written to the key.
    """
    try:
        decoded = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"cache entry is not JSON: {exc}") from None
    if type(decoded) is not list or not decoded or type(decoded[0]) is not int:
        raise ValueError("cache entry is not an envelope")
    if decoded[0] != FORMAT:
        return None
    if len(decoded) != 6 or type(decoded[1]) is not int:
        raise ValueError("cache entry is not an envelope")
    _, stored_version, fresh_until, stale_until, delta, raw = decoded
    if stored_version != version:
        return None
    delta = _time(delta)
    if delta < 0:
        raise ValueError(f"envelope delta {delta!r} is negative")
    return _time(fresh_until), _time(stale_until), delta, raw
