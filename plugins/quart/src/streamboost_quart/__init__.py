"""StreamBoost for Quart apps: the URL rule (e.g. ``/chat/<int:room>/stream``) as route label.

Usage::

    streamboost_quart.init_app(app)
    asgi = StreamBoost(app, route=streamboost_quart.route)
"""

from __future__ import annotations

from typing import Any, Final, cast

from quart import Quart, request

SCOPE_KEY: Final = "streamboost.route"
"""The scope key ``init_app``'s hook writes the URL rule to."""


def route(scope: dict[str, Any]) -> str | None:
    """``StreamBoost(..., route=route)``: the rule the request matched, or None (404s)."""
    template: str | None = scope.get(SCOPE_KEY)
    return template


async def _note_rule() -> None:
    rule = request.url_rule
    if rule is not None:
        # The very scope dict StreamBoost handed to the app: it reads the rule from there.
        cast(dict[str, Any], request.scope)[SCOPE_KEY] = rule.rule


def init_app(app: Quart) -> Quart:
    """Record each request's URL rule for ``route`` (a ``before_request`` hook, runs first)."""
    if not isinstance(app, Quart):
        raise TypeError(f"app={app!r} must be a Quart app; call init_app(app) before wrapping it")
    # First in the list: a later hook that answers the request itself must not hide the rule.
    app.before_request_funcs.setdefault(None, []).insert(0, _note_rule)
    return app


__all__ = ["SCOPE_KEY", "init_app", "route"]
