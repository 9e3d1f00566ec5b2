"""``Gate``: one process's admission state: running counts, the wait queue, the hand-over.

All of it lives on the event loop's thread and changes without awaiting, so no lock is
needed. A place is taken at once when the limits allow and nobody eligible waits; otherwise
the request joins ``waiters`` (kept sorted: larger priority first, then arrival), bounded by
``max_queue`` (a newcomer of larger priority displaces the last waiter). Without a shared
limit a finishing request hands its place to the first eligible waiter synchronously; with
one, the ``Keeper`` (one task per process) gets the leases for the eligible waiters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from bisect import insort
from collections.abc import Callable
from typing import Any

from ._config import AdmissionConfig
from ._keeper import Keeper
from ._metrics import AdmissionStats
from ._place import (
    ADMITTED,
    DISPLACED,
    GONE,
    QUEUE_FULL,
    TIMEOUT,
    UNAVAILABLE,
    WAITING,
    Place,
    order,
)
from ._routes import RouteMatcher

logger = logging.getLogger("streamboost")


class Gate:
    """The limits of one ``AdmissionConfig`` in this process."""

    def __init__(self, config: AdmissionConfig, stats: AdmissionStats) -> None:
        self.config = config
        self.stats = stats
        self.limit = config.limit
        self.max_queue = config.max_queue
        self.max_wait = config.max_wait
        self.route_limits: dict[str, int] = dict(config.route_limits or {})
        self.route_active = dict.fromkeys(self.route_limits, 0)
        self.matcher = RouteMatcher(self.route_limits)
        self.priority: Callable[[dict[str, Any]], float] | None = config.priority
        self.waiters: list[Place] = []
        self._seq = 0
        self._warned = False
        self.keeper = None if config.shared is None else Keeper(self, config.shared)

    # -- counts (no await anywhere below: each method is atomic on the loop)

    def can_take(self, route: str | None) -> bool:
        if self.stats.active >= self.limit:
            return False
        return route is None or self.route_active[route] < self.route_limits[route]

    def _take(self, place: Place) -> None:
        self.stats.active += 1
        if place.route is not None:
            self.route_active[place.route] += 1

    def _untake(self, place: Place) -> None:
        self.stats.active -= 1
        if place.route is not None:
            self.route_active[place.route] -= 1

    def enter_now(self, route: str | None) -> Place | None:
        """A place at once, without awaiting (no shared limit, room, nobody eligible waits)."""
        if self.keeper is None and self.can_take(route):
            place = Place(route)
            self._take(place)
            place.state = ADMITTED
            return place
        return None

    def enter_without_asyncio(self, route: str | None) -> Place:
        """Under trio: the local limits only, no queue and no shared limit (asyncio's)."""
        if not self._warned:
            self._warned = True
            logger.warning(
                "admission: the wait queue and the shared limit need an asyncio event loop "
                "and this server runs another (trio?); requests past the local limits are "
                "rejected at once"
            )
        place = Place(route)
        if self.can_take(route):
            self._take(place)
            place.state = ADMITTED
        else:
            place.state = QUEUE_FULL
        return place

    def leave(self, place: Place) -> None:
        """An admitted request ended: its place goes to the next eligible waiter."""
        self._untake(place)
        keeper = self.keeper
        if keeper is None:
            self._hand_over()
            return
        if place.lease is not None:
            keeper.release(place.lease)
        elif self.waiters:
            keeper.wake()

    def _hand_over(self) -> None:
        waiters = self.waiters
        i = 0
        while i < len(waiters) and self.stats.active < self.limit:
            place = waiters[i]
            if self.can_take(place.route):
                self.grant(place, None)  # removes it: i now points at the next one
            else:
                i += 1

    # -- the queue

    async def wait(
        self,
        scope: dict[str, Any],
        route: str | None,
        arrived: float,
        on_queued: Callable[[Place], None],
    ) -> Place:
        """Wait for a place; the returned place's ``state`` says how the wait ended.

        ``on_queued(place)`` is called once the request joined the queue (not when it was
        rejected at once, or admitted on the first try for a lease).
        """
        keeper = self.keeper
        if keeper is not None and not self.waiters and self.can_take(route):
            place = Place(route)
            self._take(place)
            try:
                got = await keeper.acquire_one(place)
            except BaseException:
                self._untake(place)
                raise
            if got == ADMITTED:
                place.state = ADMITTED
                return place
            self._untake(place)
            if got == UNAVAILABLE:
                place.state = UNAVAILABLE
                return place
            # The shared limit is full: queue, and the keeper polls for a lease.
        place = self._enqueue(scope, route)
        if place.state != WAITING:
            return place
        loop = asyncio.get_running_loop()
        future = place.future = loop.create_future()
        remaining = self.max_wait - (time.perf_counter() - arrived)
        place.timer = loop.call_later(max(0.0, remaining), self.settle, place, TIMEOUT)
        on_queued(place)
        if keeper is not None:
            keeper.wake()
        try:
            await future
        except asyncio.CancelledError:
            if place.state == ADMITTED:
                self.leave(place)
            else:
                self.settle(place, GONE)
            raise
        finally:
            place.timer.cancel()
        return place

    def _enqueue(self, scope: dict[str, Any], route: str | None) -> Place:
        priority = self._priority_of(scope)
        self._seq += 1
        place = Place(route, priority, self._seq)
        waiters = self.waiters
        if len(waiters) >= self.max_queue:
            last = waiters[-1] if waiters else None
            if last is None or not priority > last.priority:
                place.state = QUEUE_FULL
                return place
            self.settle(last, DISPLACED)
        insort(waiters, place, key=order)
        self.stats.waiting = len(waiters)
        return place

    def _priority_of(self, scope: dict[str, Any]) -> float:
        priority = self.priority
        if priority is None:
            return 0.0
        try:
            return float(priority(scope))
        except Exception:
            logger.exception("admission priority %r failed; the request waits with 0", priority)
            return 0.0

    def settle(self, place: Place, state: str) -> None:
        """End a wait as ``state`` (a timeout, the client leaving, a displacement...)."""
        if place.state != WAITING:
            return
        place.state = state
        with contextlib.suppress(ValueError):
            self.waiters.remove(place)
        self.stats.waiting = len(self.waiters)
        future = place.future
        if future is not None and not future.done():
            future.set_result(state)

    def grant(self, place: Place, lease: str | None) -> None:
        """Admit a waiter (its place is taken here)."""
        if place.state != WAITING:
            raise RuntimeError(f"admission: granting a place that is {place.state}")
        self._take(place)
        place.lease = lease
        self.settle(place, ADMITTED)

    def candidates(self) -> list[Place]:
        """The waiters that would be admitted now if each got a lease, in order."""
        free = self.limit - self.stats.active
        routes = dict(self.route_active)
        out: list[Place] = []
        for place in self.waiters:
            if free <= 0:
                break
            route = place.route
            if route is not None:
                if routes[route] >= self.route_limits[route]:
                    continue
                routes[route] += 1
            out.append(place)
            free -= 1
        return out

    def first_eligible(self) -> Place | None:
        for place in self.waiters:
            if self.can_take(place.route):
                return place
        return None
