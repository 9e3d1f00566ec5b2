"""Resumable SSE streams (issue 17, part 2): ``ResumeConfig`` (re-exported by ``streamboost``)
and ``Resume``, what ``StreamBoost`` builds from its ``resume=`` option.

A request on a resumable path either carries a ``Last-Event-ID`` of ours (``<stream>-<seq>``:
answered from the Redis log by ``replay``, the app does not run) or runs the app under a
``Tap`` (ids stamped, batches logged, the generation detached from its client).
"""

from __future__ import annotations

from .._types import Receive, Scope, Send
from ._config import ResumeConfig
from ._log import RedisLog
from ._replay import LAST_EVENT_ID, replay
from ._tap import Tap

__all__ = ["Resume", "ResumeConfig", "Tap", "build_resume"]


class Resume:
    """One StreamBoost's resumable streams: which requests, and the shared Redis log."""

    def __init__(self, config: ResumeConfig) -> None:
        self.config = config
        self.log = RedisLog(config)
        self._paths = config.paths
        self._unstamped = frozenset(name.encode() for name in config.unstamped_events)

    def applies(self, scope: Scope) -> bool:
        path: str = scope.get("path", "")
        return path.startswith(self._paths)

    async def resumed(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer a resume (True), or False: the request runs the app."""
        last = None
        for name, value in scope.get("headers", ()):
            if name == b"last-event-id":
                last = value.strip()
        if last is None:
            return False
        match = LAST_EVENT_ID.fullmatch(last)
        if match is None:
            return False  # not one of ours: the app's own ids
        owner = self.config.owner(scope)
        await replay(self.log, owner, match.group(1), int(match.group(2)), receive, send)
        return True

    def tap(self, scope: Scope, receive: Receive, send: Send) -> Tap:
        return Tap(self.config, self.log, self._unstamped, scope, receive, send)


def build_resume(resume: ResumeConfig | None) -> Resume | None:
    """StreamBoost's ``resume=`` option checked and built (None: off)."""
    if resume is None:
        return None
    if not isinstance(resume, ResumeConfig):
        raise TypeError(
            f"resume={resume!r} must be a ResumeConfig(redis_url=..., owner=...) or None (default)"
        )
    return Resume(resume)
