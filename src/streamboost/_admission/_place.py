"""``Place``: one request's claim on the admission limits, and the states it ends in."""

from __future__ import annotations

import asyncio
from typing import Final, Protocol

WAITING: Final = "waiting"
ADMITTED: Final = "admitted"
GONE: Final = "gone"  # the client left while queued
QUEUE_FULL: Final = "queue_full"
DISPLACED: Final = "displaced"
TIMEOUT: Final = "timeout"
UNAVAILABLE: Final = "unavailable"
FULL: Final = "full"  # the shared limit had no room (the request queues)


class Place:
    """One request's claim: queued (``future`` set), then admitted or settled otherwise."""

    __slots__ = ("future", "lease", "order", "priority", "route", "state", "timer")

    def __init__(self, route: str | None, priority: float = 0.0, seq: int = 0) -> None:
        self.route = route
        self.priority = priority
        self.order = (-priority, seq)
        self.state: str = WAITING
        self.lease: str | None = None  # the shared limit's lease id, when one is held
        self.future: asyncio.Future[str] | None = None
        self.timer: asyncio.TimerHandle | None = None


def order(place: Place) -> tuple[float, int]:
    return place.order


class Queue(Protocol):
    """What the keeper and the metrics see of a ``Gate`` (so neither imports it)."""

    waiters: list[Place]
    route_active: dict[str, int]

    def can_take(self, route: str | None) -> bool: ...

    def candidates(self) -> list[Place]: ...

    def first_eligible(self) -> Place | None: ...

    def grant(self, place: Place, lease: str | None) -> None: ...

    def settle(self, place: Place, state: str) -> None: ...
