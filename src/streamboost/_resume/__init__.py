"""Resumable SSE streams (issue 17, part 2): ``ResumeConfig`` (re-exported by ``streamboost``)
and ``Resume``, what ``StreamBoost`` builds from its ``resume=`` option.

A request on a resumable path either carries a ``Last-Event-ID`` of ours (``<stream>-<seq>``:
answered from the Redis log by ``replay``, the app does not run) or runs the app under a
``Tap`` (ids stamped, batches logged, the generation detached from its client). A resume runs
under ``HTTPStream`` like any request, with ``replay`` as its app and no coalescing (the log
holds batches already), so it has its record and metrics: its status (200, 204, 404, 503),
time to first byte and token of the replayed events, events, bytes and outcome, under the
route label ``resume`` (the app's router does not run for it; a route object with that path
is what the route resolver reads, as from a custom router).
"""

from __future__ import annotations

import dataclasses

from .._stream._settings import ResponseSettings
from .._types import Receive, Scope, Send
from ._config import ResumeConfig
from ._log import RedisLog
from ._replay import LAST_EVENT_ID, replay
from ._tap import Tap

__all__ = ["Resume", "ResumeConfig", "Tap", "build_resume"]


class _ResumeRoute:
    """``scope["route"]`` of a resume: the route label ``resume`` of its metrics."""

    __slots__ = ()
    path = "resume"


RESUME_ROUTE = _ResumeRoute()


class Resume:
    """One StreamBoost's resumable streams: which requests, and the shared Redis log."""

    def __init__(self, config: ResumeConfig) -> None:
        self.config = config
        self.log = RedisLog(config)
        self._paths = config.paths
        self._unstamped = frozenset(name.encode() for name in config.unstamped_events)
        self._base: ResponseSettings | None = None
        self._settings: ResponseSettings | None = None

    def applies(self, scope: Scope) -> bool:
        path: str = scope.get("path", "")
        return path.startswith(self._paths)

    def is_resume(self, scope: Scope) -> bool:
        """The request carries a ``Last-Event-ID`` of ours (not the app's own ids)."""
        last = _last_event_id(scope)
        return last is not None and LAST_EVENT_ID.fullmatch(last) is not None

    def settings(self, responses: ResponseSettings) -> ResponseSettings:
        """``responses`` with the replay as the app and no coalescing (built once per base)."""
        if self._base is not responses:
            self._base = responses
            self._settings = dataclasses.replace(responses, app=self.replay, coalesce=None)
        assert self._settings is not None
        return self._settings

    async def replay(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app of a resume (``is_resume``): the log after the id, then the tail."""
        last = _last_event_id(scope)
        match = None if last is None else LAST_EVENT_ID.fullmatch(last)
        assert match is not None, "replay runs for is_resume() requests only"
        owner = self.config.owner(scope)
        scope["route"] = RESUME_ROUTE
        await replay(self.log, owner, match.group(1), int(match.group(2)), receive, send)

    def tap(self, scope: Scope, receive: Receive, send: Send) -> Tap:
        return Tap(self.config, self.log, self._unstamped, scope, receive, send)


def _last_event_id(scope: Scope) -> bytes | None:
    last = None
    for name, value in scope.get("headers", ()):
        if name == b"last-event-id":
            last = value.strip()
    return last


def build_resume(resume: ResumeConfig | None) -> Resume | None:
    """StreamBoost's ``resume=`` option checked and built (None: off)."""
    if resume is None:
        return None
    if not isinstance(resume, ResumeConfig):
        raise TypeError(
            f"resume={resume!r} must be a ResumeConfig(redis_url=..., owner=...) or None (default)"
        )
    return Resume(resume)
