"""Background refreshes: stale-while-revalidate and XFetch's probabilistic early refresh.

A refresh runs off the caller's path in a task kept here until it is done (the loop holds
tasks weakly), at most one per key; ``Cache.aclose()`` cancels and awaits them.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable, Coroutine
from typing import Any


def refresh_early(delta: float, beta: float, remaining: float) -> bool:
    """XFetch (Vattani et al. 2015): refresh before expiry with a probability that rises as
    ``remaining`` seconds shrink relative to ``delta``, the load time, scaled by ``beta``."""
    return delta > 0 and -delta * beta * math.log(1.0 - random.random()) >= remaining


class Refreshes:
    """The refresh tasks in flight, by cache key."""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: dict[bytes, asyncio.Task[None]] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, key: bytes, run: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
        """Run ``run(*args)`` in the background unless ``key`` is being refreshed already."""
        if key in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(run(*args))
        self._tasks[key] = task
        task.add_done_callback(lambda _: self._tasks.pop(key, None))

    async def wait(self) -> None:
        """Until no refresh runs (one may start another's key, hence the loop)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
