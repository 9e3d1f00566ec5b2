"""Run sync callables (Django ORM, sync SQLAlchemy, sqlite3) off the event loop.

asgiref's default ``thread_sensitive=True`` funnels every sync call of the process through one
thread, so the writes of different requests queue behind each other. Deferred work uses its own
pool instead: ``thread_sensitive=False`` with a dedicated ``ThreadPoolExecutor``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async

from ._config import env_int

_executor: ThreadPoolExecutor | None = None


def _threads() -> int:
    default = min(32, (os.cpu_count() or 1) + 4)
    value = env_int("STREAMBOOST_DEFERRED_THREADS", default)
    if value < 1:
        raise ValueError(f"STREAMBOOST_DEFERRED_THREADS={value!r} must be >= 1 (default {default})")
    return value


def executor() -> ThreadPoolExecutor:
    """The process-wide pool for deferred sync work (size: STREAMBOOST_DEFERRED_THREADS)."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(
            max_workers=_threads(), thread_name_prefix="streamboost-deferred"
        )
    return _executor


def is_async_callable(fn: object) -> bool:
    """True for coroutine functions, partials of them and objects with an async ``__call__``."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - the async __call__ is what matters
    return call is not None and inspect.iscoroutinefunction(call)


def as_async(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """``fn`` itself when it is async, else ``fn`` wrapped to run in the dedicated pool."""
    if is_async_callable(fn):
        return fn
    return sync_to_async(fn, thread_sensitive=False, executor=executor())
