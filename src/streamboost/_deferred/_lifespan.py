"""Tie writers and defer() to the ASGI lifespan: start after the app's startup, drain before its
shutdown (the sinks may need the pools the app closes in its own shutdown)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._defer import drain_deferred
from ._writer import DeferredWriter

logger = logging.getLogger("streamboost.deferred")


async def drain_all(writers: Sequence[DeferredWriter[Any]], drain_timeout: float) -> int:
    """Drain defer() work, then the writers (defer jobs may still put), within ``drain_timeout`` s.

    Returns the number of jobs and items that did not finish; each is also logged.
    """
    deadline = time.monotonic() + drain_timeout
    left = await drain_deferred(drain_timeout)
    remaining = max(0.001, deadline - time.monotonic())
    results = await asyncio.gather(
        *(writer.aclose(remaining) for writer in writers), return_exceptions=True
    )
    for writer, result in zip(writers, results, strict=True):
        if isinstance(result, BaseException):
            logger.error("writer %r failed to drain", writer.name, exc_info=result)
        else:
            left += result
    if left:
        logger.error("lifespan shutdown: %d deferred jobs or items did not finish", left)
    return left


async def lifespan_with_writers(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    writers: Sequence[DeferredWriter[Any]],
    drain_timeout: float,
) -> None:
    """Run ``app``'s lifespan; start ``writers`` once it started, drain before it shuts down.

    Apps that do not speak lifespan (they raise at once) are handled here instead.
    """
    started: list[DeferredWriter[Any]] = []
    state = {"sent": False, "startup": False, "drained": False}

    async def start_writers() -> str | None:
        try:
            for writer in writers:
                await writer.start()
                started.append(writer)
        except Exception as exc:
            logger.exception("lifespan startup: a deferred writer failed to start")
            await drain_all(started, drain_timeout)
            return f"streamboost: a deferred writer failed to start: {exc!r}"
        return None

    async def drain_once() -> None:
        if not state["drained"]:
            state["drained"] = True
            await drain_all(started, drain_timeout)

    async def lifespan_send(message: Message) -> None:
        state["sent"] = True
        if message["type"] == "lifespan.startup.complete":
            error = await start_writers()
            if error is not None:
                message = {"type": "lifespan.startup.failed", "message": error}
        await send(message)

    async def lifespan_receive() -> Message:
        message = await receive()
        if message["type"] == "lifespan.startup":
            state["startup"] = True
        elif message["type"] == "lifespan.shutdown":
            await drain_once()
        return message

    try:
        await app(scope, lifespan_receive, lifespan_send)
    except Exception:
        if state["sent"]:
            raise
        logger.debug("the app does not handle lifespan; streamboost runs it for the writers")
    else:
        return
    message = {"type": "lifespan.startup"} if state["startup"] else await receive()
    while True:
        if message["type"] == "lifespan.startup":
            error = await start_writers()
            if error is None:
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.startup.failed", "message": error})
                return
        elif message["type"] == "lifespan.shutdown":
            await drain_once()
            await send({"type": "lifespan.shutdown.complete"})
            return
        message = await receive()


class LifespanWriters:
    """Pure-ASGI wrapper: ``LifespanWriters(app, writers=[w], drain_timeout=30.0)``.

    ``StreamBoost(app, writers=[...])`` does the same from inside the one middleware.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        writers: Sequence[DeferredWriter[Any]] = (),
        drain_timeout: float = 30.0,
    ) -> None:
        if drain_timeout <= 0:
            raise ValueError(f"drain_timeout={drain_timeout!r} must be > 0 seconds (default 30)")
        for writer in writers:
            if not isinstance(writer, DeferredWriter):
                raise TypeError(f"writers: {writer!r} is not a DeferredWriter")
        self.app = app
        self.writers = tuple(writers)
        self.drain_timeout = drain_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        await lifespan_with_writers(
            self.app,
            scope,
            receive,
            send,
            writers=self.writers,
            drain_timeout=self.drain_timeout,
        )
