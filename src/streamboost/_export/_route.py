"""Route labels: the route template a request was routed to, never its raw path.

Starlette's router (and so FastAPI's) writes the matched route object to ``scope["route"]``
and the outermost router to ``scope["router"]``, in the very scope dict StreamBoost handed
down. A mounted app's router overwrites ``scope["route"]`` with its own route, so the mount
prefixes are lost from the scope; they are recovered from the router tree, walked once and
cached by route object. The server's ``root_path`` (a proxy prefix) is not part of a template,
so one app gives the same labels behind any proxy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

UNMATCHED: Final = "unmatched"
"""The ``route`` label of requests no router matched (404s, apps without a router)."""
OVERFLOW: Final = "overflow"
"""The ``route`` (and ``phase``) label once a family holds ``max_series`` series."""

OTHER_METHOD: Final = "_OTHER"
"""The ``method`` label of non-standard methods (the OpenTelemetry convention), so a client
cannot create series by inventing methods."""
METHOD_LABELS: Final[Mapping[str, str]] = {
    method: method
    for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
}
"""The ``method`` label is ``METHOD_LABELS.get(method, OTHER_METHOD)`` (a lookup, no call)."""

_MAX_DEPTH: Final = 16  # mounts nested deeper than this are not walked (cycles, pathologies)
_MAX_EXTRA: Final = 10_000  # routes remembered from outside the router tree


class RouteResolver:
    """Maps a routed scope to its route template, e.g. ``/api/users/{user_id}``.

    The map ``route object -> template`` is built per outermost router and rebuilt when a
    route appears that it does not hold (routes added after startup). Entries keep their route
    object, so an id reused by a new object is never mistaken for the old one.
    """

    __slots__ = ("_router", "_templates")

    def __init__(self) -> None:
        self._router: object = None
        self._templates: dict[int, tuple[object, str]] = {}

    def __call__(self, scope: Mapping[str, Any]) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED
        entry = self._templates.get(id(route))
        if entry is not None and entry[0] is route and self._router is scope.get("router"):
            return entry[1]
        return self._resolve(scope, route)

    def _resolve(self, scope: Mapping[str, Any], route: Any) -> str:
        router = scope.get("router")
        entry = self._templates.get(id(route))
        if router is not self._router or entry is None or entry[0] is not route:
            templates: dict[int, tuple[object, str]] = {}
            if router is not None:
                _walk(getattr(router, "routes", ()), "", templates, 0)
            self._router = router
            self._templates = templates
        entry = self._templates.get(id(route))
        if entry is not None and entry[0] is route:
            return entry[1]
        # A route outside the tree (a custom router): its own path, if it has one.
        path = getattr(route, "path", None)
        template = path if isinstance(path, str) and path else UNMATCHED
        if len(self._templates) < _MAX_EXTRA:
            self._templates[id(route)] = (route, template)
        return template


def _walk(
    routes: Iterable[Any], prefix: str, out: dict[int, tuple[object, str]], depth: int
) -> None:
    if depth > _MAX_DEPTH:
        return
    for route in routes:
        path = getattr(route, "path", None)
        own = prefix + path if isinstance(path, str) else prefix
        # The same route object under two mounts keeps its first template.
        out.setdefault(id(route), (route, own or "/"))
        children = getattr(route, "routes", None)
        if children:
            _walk(children, own, out, depth + 1)


class AppRoute:
    """The app's own ``route(scope) -> template | None`` first, the built-in resolver after it.

    For frameworks that do not route the Starlette way (Django, Litestar, Quart: see the
    ``streamboost-*`` plugins). Called once per response, when an exporter first needs the label
    (the response start has gone out, so the framework has routed). A ``None`` or empty result
    falls back to ``RouteResolver``, so 404s stay ``unmatched``.
    """

    __slots__ = ("_fallback", "_route")

    def __init__(self, route: Callable[[dict[str, Any]], str | None]) -> None:
        if not callable(route):
            raise TypeError(
                f"route={route!r} must be a function (scope: dict) -> str | None that returns "
                "the route template, e.g. streamboost_django.route"
            )
        self._route = route
        self._fallback = RouteResolver()

    def __call__(self, scope: dict[str, Any]) -> str:
        template = self._route(scope)
        if template:
            return str(template)
        return self._fallback(scope)


class SeriesCap:
    """Admits at most ``max_series`` distinct label keys; the caller labels the rest overflow.

    A refused key is not remembered: its overflow labels collapse every unbounded label
    (route to ``OVERFLOW``, status to its class, phase to ``OVERFLOW``), so a family holds at
    most ``max_series`` series plus a constant number of overflow ones, whatever the app sends.
    """

    __slots__ = ("_keys", "max_series")

    def __init__(self, max_series: int) -> None:
        if max_series < 1:
            raise ValueError(f"max_series={max_series!r} must be >= 1 (default 1000)")
        self.max_series = max_series
        self._keys: set[tuple[str, ...]] = set()

    def admit(self, key: tuple[str, ...]) -> bool:
        """True when ``key`` is known or there is room for it (it is then known)."""
        keys = self._keys
        if key in keys:
            return True
        if len(keys) < self.max_series:
            keys.add(key)
            return True
        return False


OTHER_STATUS: Final = "_OTHER"
"""The overflow ``status`` label of a status outside 100..599."""
_STATUS_CLASSES: Final = ("1xx", "2xx", "3xx", "4xx", "5xx")


def status_class(status: int) -> str:
    """``"2xx"`` for 200..299 and so on; ``OTHER_STATUS`` outside 100..599."""
    return _STATUS_CLASSES[status // 100 - 1] if 100 <= status < 600 else OTHER_STATUS
