"""``defer(fn, *args, **kwargs)``: run work while and after the response streams, never lose it.

The call site only appends to a deque (and wakes an idle dispatcher): no task, no lock, no
metric. The dispatcher starts at most ``max_concurrency`` jobs at a time, holds a strong
reference to each, retries per policy, logs and counts failures. ``drain_deferred()`` (called
at lifespan shutdown) waits for everything pending up to a deadline and reports what is left.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from prometheus_client import CollectorRegistry

from .. import _checks
from ._config import DeferConfig, QueueFull
from ._metrics import metrics_for
from ._sync import as_async

logger = logging.getLogger("streamboost.deferred")

_Job = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], contextvars.Context]


class Deferrer:
    """The runner behind ``defer()``: one per process, bound to the loop that uses it."""

    def __init__(self, config: DeferConfig | None = None) -> None:
        self.config = config or DeferConfig()
        self._max_pending = self.config.max_pending
        self._pending: deque[_Job] = deque()
        self._running: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._slot: asyncio.Future[None] | None = None
        self.written = 0
        self.retried = 0
        self.failed = 0

    def bound_to_running_loop(self) -> bool:
        return self._loop is not None and self._loop.is_running()

    def queue_depth(self) -> int:
        return len(self._pending) + len(self._running)

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._submit_from_thread(fn, args, kwargs)
            return
        if loop is not self._loop or self._dispatcher is None:
            self._bind(loop)
        pending = self._pending
        if len(pending) >= self._max_pending:
            raise QueueFull(
                f"defer(): {len(pending)} jobs wait (max_pending={self._max_pending}); "
                "raise DeferConfig.max_pending or use a DeferredWriter, whose put() waits"
            )
        pending.append((fn, args, kwargs, contextvars.copy_context()))
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            wakeup.set_result(None)

    def bind_running_loop(self) -> None:
        """Bind to the running loop now, so sync code in threads can defer() before any
        async code did (the lifespan glue calls this at startup)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._dispatcher is None:
            self._bind(loop)

    def _submit_from_thread(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        loop = self._loop
        if _other_async_library():
            raise RuntimeError(
                "defer() needs an asyncio event loop and this code runs under another "
                "(trio?); serve the app with asyncio, or start the work in the app's own "
                "task group (anyio.create_task_group)"
            )
        if loop is None or loop.is_closed() or not loop.is_running():
            raise RuntimeError(
                "defer() called outside an event loop and no loop is running defer() work yet; "
                "call it from async code (or from a thread of a running ASGI app)"
            )
        loop.call_soon_threadsafe(self.submit, fn, args, kwargs)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a dispatcher on ``loop``; the state of another loop's jobs is dropped (that
        loop is gone), this loop's is kept (tracked tasks must stay visible to drain())."""
        if loop is not self._loop:
            if self._loop is not None and not self._loop.is_closed() and self.queue_depth():
                logger.error(
                    "defer(): %d jobs of a previous event loop never ran", self.queue_depth()
                )
            self._loop = loop
            self._pending.clear()
            self._running = set()
            self._wakeup = self._slot = None
        self._dispatcher = loop.create_task(self._dispatch(), name="streamboost-defer")

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        pending, running = self._pending, self._running
        limit = self.config.max_concurrency
        while True:
            if not pending:
                self._wakeup = loop.create_future()
                await self._wakeup
                continue
            if len(running) >= limit:
                self._slot = loop.create_future()
                await self._slot
                continue
            fn, args, kwargs, context = pending.popleft()
            task = loop.create_task(self._run(fn, args, kwargs), context=context)
            running.add(task)
            task.add_done_callback(self._finished)

    def track(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` as a task that ``drain()`` waits for (used by delta_buffer's last write)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        task = loop.create_task(coro)
        self._running.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        slot = self._slot
        if slot is not None and not slot.done():
            self._slot = None
            slot.set_result(None)

    async def _run(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        # defer(save(x)) passes a coroutine object: it cannot be re-created, so no retries.
        once = inspect.iscoroutine(fn)
        call = as_async(fn) if not once else None
        retries = 0 if once else self.config.retry.retries
        attempt = 0
        while True:
            try:
                await (call(*args, **kwargs) if call is not None else fn)  # type: ignore[misc]
            except Exception as exc:
                if attempt >= retries:
                    self.failed += 1
                    logger.error(
                        "defer(%s) failed after %d attempts", _label(fn), attempt + 1, exc_info=exc
                    )
                    return
                self.retried += 1
                delay = self.config.retry.delay(attempt)
                attempt += 1
                logger.warning("defer(%s) failed, retry in %.3f s: %r", _label(fn), delay, exc)
                await asyncio.sleep(delay)
                continue
            self.written += 1
            return

    async def drain(self, drain_timeout: float) -> int:
        """Wait up to ``drain_timeout`` seconds for every pending and running job; returns how many
        did not finish (they are cancelled and logged)."""
        if self._loop is not asyncio.get_running_loop():
            return 0
        deadline = asyncio.get_running_loop().time() + drain_timeout
        while self._pending or self._running:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            if self._running:
                await asyncio.wait(set(self._running), timeout=remaining)
            else:
                await asyncio.sleep(0)  # the dispatcher starts the pending jobs
        left = len(self._pending) + len(self._running)
        if left:
            logger.error(
                "defer(): %d jobs did not finish within %.1f s and are dropped (%d pending, "
                "%d cancelled)", left, drain_timeout, len(self._pending), len(self._running),
            )  # fmt: skip
            self._pending.clear()
            for task in list(self._running):
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)
        await self._stop_dispatcher()
        return left

    async def _stop_dispatcher(self) -> None:
        """Stop the idle dispatcher, so no task outlives the drain; a later defer() starts
        a new one (the loop stays bound, so threads of the app can still defer())."""
        dispatcher, self._dispatcher = self._dispatcher, None
        self._wakeup = self._slot = None
        if dispatcher is not None:
            dispatcher.cancel()
            await asyncio.gather(dispatcher, return_exceptions=True)


def _other_async_library() -> bool:
    """True inside a running trio (or other non-asyncio) event loop."""
    try:
        import sniffio
    except ImportError:
        return False
    try:
        return sniffio.current_async_library() != "asyncio"
    except sniffio.AsyncLibraryNotFoundError:
        return False


def _label(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


class _DeferMetrics:
    """The metrics source of whichever runner ``defer()`` currently uses."""

    name = "defer"

    @property
    def written(self) -> int:
        return _deferrer.written

    @property
    def retried(self) -> int:
        return _deferrer.retried

    @property
    def dead_lettered(self) -> int:
        return _deferrer.failed

    @property
    def lost(self) -> int:
        return 0  # an unfinished job is reported by drain_deferred()'s count

    def queue_depth(self) -> int:
        return _deferrer.queue_depth()

    def outcome_labels(self) -> tuple[str, str, str]:
        # A failed job is logged, not stored: a callable is not data for a dead-letter store.
        return ("written", "retried", "failed")


_deferrer = Deferrer()
_defer_metrics = _DeferMetrics()


def defer(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
    """Run ``fn(*args, **kwargs)`` in the background; returns at once.

    ``fn`` is a coroutine function or a sync callable (run in a dedicated thread pool). Jobs run
    in the caller's context (contextvars), at most ``max_concurrency`` at a time, and are
    retried with backoff; failures are logged and counted. ``StreamBoost`` drains pending work
    at lifespan shutdown; without it, ``await drain_deferred()`` before the loop ends.
    """
    _deferrer.submit(fn, args, kwargs)


def configure_defer(
    config: DeferConfig | None = None, *, registry: CollectorRegistry | None = None
) -> None:
    """Replace the defer() runner's configuration (call at startup, before any defer())."""
    global _deferrer
    if _deferrer.bound_to_running_loop() and _deferrer.queue_depth():
        raise RuntimeError(
            f"configure_defer() with {_deferrer.queue_depth()} jobs pending; configure at startup"
        )
    _deferrer = Deferrer(config)
    if registry is not None:
        export_defer_metrics(registry)


def bind_defer_to_running_loop() -> None:
    """Let sync code in worker threads (Django views, sync endpoints) call defer() at once."""
    _deferrer.bind_running_loop()


async def drain_deferred(drain_timeout: float = 30.0) -> int:
    """Wait for all defer() work up to ``drain_timeout`` s; returns the jobs left unfinished."""
    _checks.seconds("drain_timeout", drain_timeout, default=30.0)
    if drain_timeout <= 0:
        raise ValueError(f"drain_timeout={drain_timeout!r} must be > 0 seconds (default 30.0)")
    return await _deferrer.drain(drain_timeout)


def export_defer_metrics(registry: CollectorRegistry | None) -> None:
    """Make ``registry`` (None: the default) export defer()'s counters as ``writer="defer"``."""
    metrics_for(registry).add(_defer_metrics)
