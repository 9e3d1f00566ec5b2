"""Tie writers and defer() to the ASGI lifespan: start after the app's startup, drain before its
shutdown (the sinks may need the pools the app closes in its own shutdown)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from .. import _checks
from .._types import ASGIApp, Message, Receive, Scope, Send
from ._defer import bind_defer_to_running_loop, drain_deferred
from ._writer import DeferredWriter

logger = logging.getLogger("streamboost.deferred")


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


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

    Apps that do not speak lifespan (they raise before receiving or sending anything) are
    handled here; an app that raises after receiving the startup has failed, and the error
    goes to the server.
    """
    started: list[DeferredWriter[Any]] = []
    app_replied = startup_received = drained = False
    # A writer failed to start after the app's own startup: the app is shut down first (its
    # next receive() is a shutdown), then the server hears of the failure. Told at once, the
    # server would exit while the app still awaits its shutdown, and the app's cancellation
    # would show as a CancelledError traceback.
    failed: Message | None = None

    async def start_writers() -> Message:
        if not _on_asyncio():
            # trio (hypercorn --worker-class trio): defer() and writers are asyncio tasks.
            if not writers:
                return {"type": "lifespan.startup.complete"}
            return {
                "type": "lifespan.startup.failed",
                "message": (
                    f"streamboost: writers={list(writers)!r} need an asyncio event loop and "
                    "this server runs another (trio?); serve with asyncio (e.g. hypercorn "
                    "--worker-class asyncio) or pass no writers"
                ),
            }
        bind_defer_to_running_loop()
        try:
            for writer in writers:
                await writer.start()
                started.append(writer)
        except Exception as exc:
            # One line, in the message the server logs (uvicorn, hypercorn and granian do);
            # the traceback only at DEBUG. A writer's own errors name it already.
            text = str(exc)
            if not text.startswith("streamboost"):
                text = f"streamboost: deferred writer {writer.name!r} failed to start: {exc!r}"
            logger.debug("lifespan startup: writer %r failed to start", writer.name, exc_info=True)
            await drain_all(started, drain_timeout)
            return {"type": "lifespan.startup.failed", "message": text}
        return {"type": "lifespan.startup.complete"}

    async def drain_once() -> None:
        nonlocal drained
        if not drained:
            drained = True
            if _on_asyncio():  # elsewhere nothing was deferred nor started
                await drain_all(started, drain_timeout)

    async def app_send(message: Message) -> None:
        nonlocal app_replied, failed
        app_replied = True
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            message = await start_writers()
            if message["type"] == "lifespan.startup.failed":
                failed = message
                return  # told once the app has shut down
        elif failed is not None and kind.startswith("lifespan.shutdown."):
            reply, failed = failed, None
            if kind == "lifespan.shutdown.failed" and message.get("message"):
                text = f"{reply['message']}; then the app's shutdown failed: {message['message']}"
                reply = {**reply, "message": text}
            message = reply
        await send(message)

    async def app_receive() -> Message:
        nonlocal startup_received, drained
        if failed is not None:
            drained = True  # the writers that started were drained already
            return {"type": "lifespan.shutdown"}
        message = await receive()
        if message["type"] == "lifespan.startup":
            startup_received = True
        elif message["type"] == "lifespan.shutdown":
            await drain_once()  # before the app closes the pools the sinks use
        return message

    try:
        await app(scope, app_receive, app_send)
        if failed is not None:  # the app returned without a shutdown reply
            await send(failed)
        return
    except Exception:
        if failed is not None:  # the app failed in its shutdown: the server learns of both
            await send(failed)
            raise
        # An app that received the startup speaks lifespan: its failure is the server's to
        # see (uvicorn --lifespan on then refuses to start), as without StreamBoost.
        if app_replied or startup_received:
            raise
        logger.debug("the app does not handle lifespan; streamboost runs it for the writers")
    message = {"type": "lifespan.startup"} if startup_received else await receive()
    while True:
        if message["type"] == "lifespan.startup":
            reply = await start_writers()
            await send(reply)
            if reply["type"] == "lifespan.startup.failed":
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
        _checks.seconds("drain_timeout", drain_timeout, default=30.0)
        if drain_timeout <= 0:
            raise ValueError(f"drain_timeout={drain_timeout!r} must be > 0 seconds (default 30.0)")
        for writer in writers:
            if not isinstance(writer, DeferredWriter):
                raise TypeError(f"writers=[{writer!r}, ...]: each must be a DeferredWriter(...)")
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
