"""pytest plugin: every app a test hands to Starlette's TestClient or httpx's ASGITransport runs
wrapped in StreamBoost (``run_thirdparty_suites.py`` loads it with ``-p thirdparty_wrap``).

The wrapper keeps StreamBoost's defaults that change the wire (coalescing on, WebSocket batching
off) and switches off what only adds endpoints or global state the suites do not expect: the
Prometheus families and ``/metrics``, and OpenTelemetry.
"""

from __future__ import annotations

import inspect
from typing import Any

from streamboost import StreamBoost


def _wrap(app: Any) -> Any:
    if isinstance(app, StreamBoost) or not _is_asgi3(app):
        return app  # ASGI2 apps are adapted by TestClient itself; wrap only ASGI3 ones
    return StreamBoost(app, metrics=False, metrics_path=None, otel=False)


def _is_asgi3(app: Any) -> bool:
    if inspect.isclass(app):
        return hasattr(app, "__await__")
    call = getattr(app, "__call__", None)  # noqa: B004 - a bound method, not callable()
    return inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(call)


def _patch(cls: Any) -> None:
    original = cls.__init__

    def __init__(self: Any, app: Any, *args: Any, **kwargs: Any) -> None:
        original(self, _wrap(app), *args, **kwargs)

    cls.__init__ = __init__


def _install() -> None:
    from starlette.testclient import TestClient

    _patch(TestClient)
    for name in ("httpx", "httpx2"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        _patch(module.ASGITransport)


_install()
