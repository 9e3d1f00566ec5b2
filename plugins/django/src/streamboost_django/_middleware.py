"""The Django middleware that tells StreamBoost the route, and the ``route`` it reads."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final, TypeAlias

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

SCOPE_KEY: Final = "streamboost.route"
"""The scope key the middleware writes the route template to."""

logger = logging.getLogger("streamboost.django")

_MAX_WARNED: Final = 1000  # views remembered as warned about (a bound, not a realistic count)
_warned: set[str] = set()

# Django ships no type hints: its request and response are Any here.
HttpRequest: TypeAlias = Any
HttpResponseBase: TypeAlias = Any
Handler = Callable[[HttpRequest], Any]


def route(scope: dict[str, Any]) -> str | None:
    """``StreamBoost(..., route=route)``: the template the middleware found, or None (404s)."""
    template: str | None = scope.get(SCOPE_KEY)
    return template


def _note(request: HttpRequest, response: HttpResponseBase) -> None:
    scope: dict[str, Any] | None = getattr(request, "scope", None)
    match = request.resolver_match
    if scope is None or match is None:  # WSGI, or nothing resolved (404)
        return
    # Django's own route strings have no leading slash; labels all start with one.
    scope[SCOPE_KEY] = "/" + str(match.route)
    if response.streaming and not getattr(response, "is_async", True):
        view = match.view_name or match._func_path
        if view not in _warned and len(_warned) < _MAX_WARNED:
            _warned.add(view)
            logger.warning(
                "view %r streams a sync iterator under ASGI: Django consumes it whole before "
                "sending anything, so the client gets no stream (and time to first token is the "
                "whole response); give StreamingHttpResponse an async iterator instead",
                view,
            )


def middleware(get_response: Handler) -> Handler:
    """Add ``"streamboost_django.middleware"`` to ``settings.MIDDLEWARE`` (anywhere)."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponseBase:
            response: HttpResponseBase = await get_response(request)
            _note(request, response)
            return response

        return markcoroutinefunction(async_middleware)

    def sync_middleware(request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase = get_response(request)
        _note(request, response)
        return response

    return sync_middleware


# What django.utils.decorators.sync_and_async_middleware sets: Django then passes an async
# get_response under ASGI, and no thread hop is added for this middleware.
middleware.sync_capable = True  # type: ignore[attr-defined]
middleware.async_capable = True  # type: ignore[attr-defined]
