"""What a buffered chunk's send returns, and whether this loop can coalesce at all."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, NoReturn

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


class Ready(asyncio.Future[None]):
    """What the app's send returns for a buffered chunk: a future that is already done.

    Awaiting it costs what awaiting any done future costs (no coroutine per chunk). It is also
    a ``collections.abc.Coroutine`` (``send``/``throw``/``close``, registered below), so
    ``asyncio.create_task(send(message))``, ``ensure_future`` and anyio's
    ``start_soon(send, message)``, which ask for a coroutine, accept it; as a coroutine it
    finishes at its first step with ``None``. One per stream, reused for every buffered chunk.
    """

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
