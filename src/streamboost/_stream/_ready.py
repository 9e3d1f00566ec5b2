"""What a buffered chunk's send returns, and whether this loop can coalesce at all."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, NoReturn

logger = logging.getLogger("streamboost")

_warned = False


def on_asyncio() -> bool:
    """True under an asyncio loop: the flusher's tasks and timers need one. Elsewhere (trio)
    streams pass through uncoalesced, and a warning says so once."""
    global _warned
    if asyncio._get_running_loop() is not None:
        return True
    if not _warned:
        _warned = True
        logger.warning(
            "streamboost: coalescing needs an asyncio event loop and this server runs another "
            "(trio?); streams pass through uncoalesced, still timed and counted"
        )
    return False


_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Callable[[], float]] = (
    weakref.WeakKeyDictionary()
)


def loop_clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """``loop.time`` as one callable per loop: ``time.monotonic`` itself where that is all it
    returns (asyncio's own loops), so the coalescer's per-chunk reading runs no Python frame."""
    clock = _clocks.get(loop)
    if clock is None:
        own = type(loop).time is asyncio.BaseEventLoop.time and "time" not in getattr(
            loop, "__dict__", ()
        )
        clock = _clocks[loop] = time.monotonic if own else loop.time
    return clock


class Ready(asyncio.Future[None]):
    """What the app's send returns for a buffered chunk: a future that is already done.

    Awaiting it costs what awaiting any done future costs (no coroutine per chunk). It is also
    a ``collections.abc.Coroutine`` (``send``/``throw``/``close``, registered below), so
    ``asyncio.create_task(send(message))``, ``ensure_future`` and anyio's
    ``start_soon(send, message)``, which ask for a coroutine, accept it; as a coroutine it
    finishes at its first step with ``None``. One per event loop (``of``), shared by every
    stream on it: a done future has no state a caller can change (``cancel`` and
    ``set_result`` are refused, a callback added runs at once).
    """

    _by_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Ready]] = (
        weakref.WeakKeyDictionary()
    )

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Ready:
        ready = cls._by_loop.get(loop)
        if ready is None:
            ready = cls._by_loop[loop] = cls(loop)
        return ready

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self.set_result(None)

    def send(self, value: object) -> NoReturn:
        raise StopIteration

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> NoReturn:
        if val is None:
            raise typ
        raise val.with_traceback(tb) if tb is not None else val

    def close(self) -> None:
        return None


Coroutine.register(Ready)
