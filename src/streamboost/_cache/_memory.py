"""The in-process tier: a bounded LRU of decoded values with per-entry expiry.

Entries hold the Python object itself, so a hit is a dict lookup and a clock read. Times are
``time.monotonic()`` seconds.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

# Past ``early`` an entry is in XFetch's window: the slow path rolls the dice for an early
# refresh. Beyond 10 deltas before expiry the chance is below e**-10, so hits skip the roll.
XFETCH_WINDOW = 10.0


class Entry:
    __slots__ = ("delta", "early", "fresh_until", "stale_until", "tags", "value")

    def __init__(
        self,
        value: Any,
        fresh_until: float,
        stale_until: float,
        delta: float,
        beta: float,
        tags: tuple[str, ...],
    ) -> None:
        self.value = value
        self.fresh_until = fresh_until
        self.stale_until = stale_until
        self.delta = delta
        self.early = fresh_until - delta * beta * XFETCH_WINDOW
        self.tags = tags


class MemoryStore:
    """Bounded LRU; ``entries`` is read directly by the decorated function's fast path."""

    __slots__ = ("_tags", "entries", "max_entries")

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[bytes, Entry] = OrderedDict()
        self._tags: dict[str, set[bytes]] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def put(self, key: bytes, entry: Entry) -> None:
        entries = self.entries
        old = entries.pop(key, None)
        if old is not None:
            self._untag(key, old)
        entries[key] = entry
        for tag in entry.tags:
            self._tags.setdefault(tag, set()).add(key)
        while len(entries) > self.max_entries:
            evicted_key, evicted = entries.popitem(last=False)
            self._untag(evicted_key, evicted)

    def delete(self, keys: Iterable[bytes]) -> None:
        for key in keys:
            entry = self.entries.pop(key, None)
            if entry is not None:
                self._untag(key, entry)

    def tagged(self, tags: Iterable[str]) -> set[bytes]:
        keys: set[bytes] = set()
        for tag in tags:
            keys |= self._tags.get(tag, set())
        return keys

    def clear(self) -> None:
        self.entries.clear()
        self._tags.clear()

    def _untag(self, key: bytes, entry: Entry) -> None:
        for tag in entry.tags:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[tag]
