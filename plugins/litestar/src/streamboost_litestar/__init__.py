"""StreamBoost for Litestar apps: ``Litestar(..., plugins=[StreamBoostPlugin()])``.

Route labels are Litestar's path template (``scope["path_template"]``, e.g.
``/chat/{room}/stream``: parameter names without their types, as Litestar writes them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.plugins import InitPlugin

from streamboost import StreamBoost
from streamboost._deferred._defer import bind_defer_to_running_loop
from streamboost._deferred._lifespan import drain_all


def route(scope: dict[str, Any]) -> str | None:
    """``StreamBoost(..., route=route)``: the template Litestar routed to, or None (404s)."""
    template: str | None = scope.get("path_template")
    return template


class StreamBoostPlugin(InitPlugin):
    """Wraps the app's HTTP handler in ``StreamBoost(**options)`` when its lifespan starts.

    Litestar answers the lifespan itself, so this plugin starts ``writers`` there and drains
    them and ``defer()`` work at shutdown. Under a server that sends no lifespan nothing is
    wrapped (the plugin has no app to wrap before it).
    """

    __slots__ = ("options",)

    def __init__(self, **options: Any) -> None:
        if "route" in options:
            raise TypeError("StreamBoostPlugin(route=...) is given: the plugin names routes itself")
        options.setdefault("route", route)
        self.options = options

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.lifespan.append(self._lifespan)
        return app_config

    def _lifespan(self, app: Litestar) -> AbstractAsyncContextManager[None]:
        return self._run(app)

    @asynccontextmanager
    async def _run(self, app: Litestar) -> AsyncIterator[None]:
        boost = StreamBoost(app.asgi_handler, **self.options)  # type: ignore[arg-type]
        # The same place Litestar's own OpenTelemetry plugin puts its middleware: after the
        # app set scope["app"], before routing (which writes scope["path_template"]).
        app.asgi_handler = boost  # type: ignore[assignment]
        bind_defer_to_running_loop()
        writers = boost.lifespan.writers
        for writer in writers:
            await writer.start()
        try:
            yield
        finally:
            await drain_all(writers, boost.lifespan.drain_timeout)


__all__ = ["StreamBoostPlugin", "route"]
