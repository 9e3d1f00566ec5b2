"""``Keeper``: the one task per process that holds this process's leases on the shared limit.

It renews every held lease each ``lease / 3`` seconds in one script call, removes the leases
of finished requests (so a request's end never awaits Redis), and gets leases for the
waiters the local limits would admit, every ``poll_interval`` while the shared limit is full.
It runs while there is anything to hold, release or wait for, and ends by itself when idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
import uuid
from typing import Final

from ._config import SharedLimit
from ._place import ADMITTED, FULL, UNAVAILABLE, WAITING, Place, Queue
from ._redis import RedisSemaphore

logger = logging.getLogger("streamboost")

_WARN_EVERY: Final = 10.0  # seconds between two warnings about Redis errors


class Keeper:
    def __init__(self, gate: Queue, config: SharedLimit) -> None:
        self.gate = gate
        self.config = config
        self.semaphore = RedisSemaphore(config)
        self.held: set[str] = set()
        self.releasing: list[str] = []
        self._renew_every = config.lease / 3
        self._next_renew = 0.0
        self._token = uuid.uuid4().hex[:12]
        self._count = 0
        self._task: asyncio.Task[None] | None = None
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warned_at = -math.inf
        self.errors = 0  # Redis calls that failed

    def _new_id(self) -> str:
        # The pid keeps workers forked from one master apart; the token, machines.
        self._count += 1
        return f"{self._token}.{os.getpid()}.{self._count}"

    def _hold(self, lease: str) -> None:
        if not self.held:
            self._next_renew = time.monotonic() + self._renew_every
        self.held.add(lease)

    async def acquire_one(self, place: Place) -> str:
        """A lease for ``place`` now: ``"admitted"``, ``"full"`` or ``"unavailable"``."""
        lease = self._new_id()
        try:
            granted = await self.semaphore.acquire([lease])
        except asyncio.CancelledError:
            self.release(lease)  # it may have been added before the cancellation
            raise
        except Exception as exc:
            if not isinstance(exc, self.semaphore.errors):
                raise
            self._failed(exc)
            self.release(lease)
            return ADMITTED if self.config.on_error == "admit" else UNAVAILABLE
        if not granted:
            return FULL
        place.lease = lease
        self._hold(lease)
        self._ensure()
        return ADMITTED

    def release(self, lease: str) -> None:
        self.held.discard(lease)
        self.releasing.append(lease)
        self.wake()

    def wake(self) -> None:
        self._ensure()
        event = self._event
        if event is not None:
            event.set()

    def _ensure(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._event, self._task = loop, asyncio.Event(), None
        task = self._task
        if task is None or task.done():
            self._task = loop.create_task(self._run(), name="streamboost-admission-keeper")
            self._task.add_done_callback(_log_failure)

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            logger.warning(
                "admission: shared limit %r unavailable (%r); %s",
                self.config.key,
                exc,
                "admitting under the local limits"
                if self.config.on_error == "admit"
                else "rejecting with 503",
            )

    async def _run(self) -> None:
        event = self._event
        assert event is not None
        while True:
            event.clear()
            if self.releasing:
                ids, self.releasing = self.releasing, []
                try:
                    await self.semaphore.release(ids)
                except Exception as exc:  # their leases expire by themselves
                    if not isinstance(exc, self.semaphore.errors):
                        raise
                    self._failed(exc)
            if self.held and time.monotonic() >= self._next_renew:
                await self._renew()
            full = await self._grant()
            gate = self.gate
            if not self.held and not self.releasing and not gate.waiters:
                return  # idle: the next lease or waiter starts a new task
            if self.releasing or event.is_set():
                continue
            timeout = self.config.poll_interval if full else math.inf
            if self.held:
                timeout = min(timeout, max(0.0, self._next_renew - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if timeout == math.inf else timeout):
                    await event.wait()

    async def _renew(self) -> None:
        self._next_renew = time.monotonic() + self._renew_every
        try:
            lost = await self.semaphore.renew(sorted(self.held))
        except Exception as exc:
            if not isinstance(exc, self.semaphore.errors):
                raise
            self._failed(exc)
            return
        if lost:
            logger.warning(
                "admission: %d lease(s) on %r expired and the shared limit is full; their "
                "streams go on, past the limit, until they end (renewals kept failing for "
                "longer than lease=%r s?)",
                len(lost),
                self.config.key,
                self.config.lease,
            )

    async def _grant(self) -> bool:
        """Leases for the eligible waiters; True when some still wait for the shared limit."""
        gate = self.gate
        candidates = gate.candidates()
        if not candidates:
            return False
        ids = [self._new_id() for _ in candidates]
        try:
            granted = await self.semaphore.acquire(ids)
        except asyncio.CancelledError:
            self.releasing.extend(ids)
            raise
        except Exception as exc:
            if not isinstance(exc, self.semaphore.errors):
                raise
            self._failed(exc)
            self.releasing.extend(ids)
            self._unavailable(candidates)
            return False
        for lease in ids[:granted]:
            place = gate.first_eligible()  # one may have left during the await
            if place is None:
                self.releasing.append(lease)
                continue
            gate.grant(place, lease)
            self._hold(lease)
        return granted < len(candidates)

    def _unavailable(self, candidates: list[Place]) -> None:
        gate = self.gate
        for place in candidates:
            if place.state != WAITING:
                continue
            if self.config.on_error == "reject":
                gate.settle(place, UNAVAILABLE)
            elif gate.can_take(place.route):
                gate.grant(place, None)


def _log_failure(task: asyncio.Task[None]) -> None:
    # A bug, not a Redis error (those are handled): waiters then wait for their deadline,
    # and the next wake() starts a new keeper.
    if not task.cancelled() and task.exception() is not None:
        logger.error("admission keeper failed", exc_info=task.exception())
