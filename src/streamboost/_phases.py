"""Phases: time the work a request does before its first token, so TTFT can be explained.

``phase("rag")`` (a context manager, sync or async, and a decorator) and ``gather_phases()``
(concurrent branches, each a phase, with per-branch timeouts and fallbacks) append a
``PhaseTiming`` to the current request's ``StreamRecord``, found through a context variable
that StreamBoost sets around the app call. The exporters observe the phases once, at the end
of the request (``streamboost_phase_duration_seconds``, ``streamboost_phase_fallbacks_total``,
one child span per phase). Outside a StreamBoost request the work runs untimed.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar

from . import _checks
from ._ratelog import RateLimitedLog
from ._stream import PhaseTiming, current_record

__all__ = ["gather_phases", "phase"]

logger = logging.getLogger("streamboost.phases")
# A fallback usually repeats on every request while its dependency is down or slow: one line
# per phase and reason a minute (the metric streamboost_phase_fallbacks_total counts them all).
fallback_log = RateLimitedLog(logger)

P = ParamSpec("P")
T = TypeVar("T")

FALLBACK_TIMEOUT: Final = "timeout"
FALLBACK_ERROR: Final = "error"

_clock = time.perf_counter


def _add(name: str, started_at: float, fallback: str | None = None) -> None:
    record = current_record.get()
    if record is None:
        return
    record.add_phase(PhaseTiming(name, started_at, _clock(), fallback))


class phase:
    """Time a block or a function as the phase ``name`` of the current request.

    ``async with phase("rag"): ...``, ``with phase("rag"): ...`` or ``@phase("rag")`` on an
    async function. The phase is recorded also when the block raises.
    """

    __slots__ = ("_started", "name")

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"phase name {name!r} must be a non-empty string, e.g. 'rag'")
        self.name = name
        self._started: list[float] = []  # a stack: one instance may be entered re-entrantly

    def __enter__(self) -> phase:
        self._started.append(_clock())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _add(self.name, self._started.pop())

    async def __aenter__(self) -> phase:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"@phase({self.name!r}) decorates async functions; got {func!r}")
        name = self.name

        @functools.wraps(func)
        async def timed(*args: P.args, **kwargs: P.kwargs) -> T:
            started = _clock()
            try:
                return await func(*args, **kwargs)
            finally:
                _add(name, started)

        return timed


async def _branch(
    name: str,
    aw: Awaitable[Any],
    seconds: float | None,
    has_fallback: bool,
    fallback: Any,
) -> Any:
    started = _clock()
    reason: str | None = None
    try:
        if seconds is None:
            return await aw
        async with asyncio.timeout(seconds) as deadline:
            return await aw
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if not has_fallback:
            raise
        # A TimeoutError raised by the branch itself is an error, not our deadline.
        expired = seconds is not None and isinstance(exc, TimeoutError) and deadline.expired()
        reason = FALLBACK_TIMEOUT if expired else FALLBACK_ERROR
        fallback_log.warning(
            (name, reason),
            "streamboost phases: phase %r used its fallback (%s): %r",
            name, reason, exc,
        )  # fmt: skip
        return fallback
    finally:
        _add(name, started, reason)


def _check(
    aws: Mapping[str, Awaitable[Any]], timeouts: Mapping[str, float], fallbacks: Mapping[str, Any]
) -> None:
    for label, names in (("timeouts", timeouts), ("fallbacks", fallbacks)):
        unknown = sorted(set(names) - set(aws))
        if unknown:
            raise ValueError(
                f"{label} name {unknown} with no awaitable; pass them as keywords: "
                f"gather_phases({unknown[0]}=...)"
            )
    for name, seconds in timeouts.items():
        _checks.seconds(f"timeouts[{name!r}]", seconds, default=1.0)
        if not seconds > 0:
            raise ValueError(f"timeouts[{name!r}]={seconds!r} must be > 0 seconds")


async def gather_phases(
    *,
    timeouts: Mapping[str, float] | None = None,
    fallbacks: Mapping[str, Any] | None = None,
    **aws: Awaitable[Any],
) -> tuple[Any, ...]:
    """Await ``aws`` concurrently, each timed as a phase named by its keyword.

    Returns the results as a tuple in keyword order. ``timeouts`` maps a branch to seconds;
    a branch past its timeout or raising returns ``fallbacks[name]`` when there is one (and is
    counted as a fallback), else its error propagates after the other branches are cancelled
    and awaited.
    """
    timeouts = timeouts or {}
    fallbacks = fallbacks or {}
    try:
        _check(aws, timeouts, fallbacks)
    except (TypeError, ValueError):
        for aw in aws.values():
            if inspect.iscoroutine(aw):
                aw.close()  # never started: no "coroutine was never awaited" warning
        raise
    tasks = [
        asyncio.ensure_future(
            _branch(name, aw, timeouts.get(name), name in fallbacks, fallbacks.get(name))
        )
        for name, aw in aws.items()
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task in done and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return tuple(task.result() for task in tasks)
    finally:
        # Errors and our own cancellation: no branch outlives the call.
        pending = [task for task in tasks if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
