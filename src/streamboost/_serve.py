"""``streamboost serve TARGET``: an existing ASGI app behind StreamBoost, with no code change.

Every server here imports the app in each worker process, so the parent hands the target and
the options down through the environment and each worker builds its own ``StreamBoost`` from
``boosted_app()``. With several workers, Prometheus needs a shared multiprocess directory; one
is created when the user has not set ``PROMETHEUS_MULTIPROC_DIR``.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from typing import Any, Final

import orjson

from ._middleware import StreamBoost
from ._types import ASGIApp

SERVERS: Final = ("uvicorn", "hypercorn", "granian")
ENV_TARGET: Final = "STREAMBOOST_SERVE_TARGET"
ENV_OPTIONS: Final = "STREAMBOOST_SERVE_OPTIONS"
FACTORY: Final = "streamboost._serve:boosted_app"


def load_target(target: str) -> Any:
    """Import ``package.module:attribute`` (the attribute may be dotted)."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"target={target!r}: use 'package.module:app', e.g. 'myapp.main:app'")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as uvicorn does: the user's modules live here
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ValueError(f"target={target!r}: module {module_name!r} not found ({exc})") from exc
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ValueError(f"target={target!r}: {module_name} has no {attribute!r}") from exc
    if not callable(obj):
        raise ValueError(f"target={target!r} is {type(obj).__name__}, not an ASGI app")
    return obj


def boosted_app() -> ASGIApp:
    """The factory each worker calls: the target from the environment, wrapped once."""
    target = os.environ.get(ENV_TARGET)
    if not target:
        raise RuntimeError(f"{ENV_TARGET} is not set; start the app with 'streamboost serve'")
    app = load_target(target)
    if isinstance(app, StreamBoost):
        return app  # the app wraps itself already; a second layer would count twice
    options = orjson.loads(os.environ.get(ENV_OPTIONS, "{}"))
    return StreamBoost(app, **options)


def serve(
    target: str,
    *,
    server: str = "uvicorn",
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    coalesce: bool = True,
    metrics_path: str | None = "/metrics",
) -> int:
    """Run ``target`` under ``server`` with ``workers`` processes, each wrapped in StreamBoost."""
    if server not in SERVERS:
        raise ValueError(f"server={server!r}: use one of {', '.join(SERVERS)}")
    if workers < 1:
        raise ValueError(f"workers={workers!r} must be >= 1")
    try:
        importlib.import_module(server)
    except ImportError as exc:
        raise ValueError(f"server={server!r} is not installed: pip install {server}") from exc
    load_target(target)  # fail here, with the reason, rather than in every worker
    os.environ[ENV_TARGET] = target
    os.environ[ENV_OPTIONS] = orjson.dumps(
        {"coalesce": coalesce, "metrics_path": metrics_path}
    ).decode()
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its own files; a scrape of any worker adds them all up.
        directory = tempfile.mkdtemp(prefix="streamboost-prometheus-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        print(f"streamboost serve: PROMETHEUS_MULTIPROC_DIR={directory}", file=sys.stderr)
    if server == "uvicorn":
        import uvicorn

        uvicorn.run(FACTORY, factory=True, host=host, port=port, workers=workers)
    elif server == "hypercorn":
        from hypercorn.config import Config
        from hypercorn.run import run

        config = Config()
        config.application_path = FACTORY + "()"  # hypercorn evaluates the attribute
        config.bind = [f"{host}:{port}"]
        config.workers = workers
        return run(config)
    else:
        from granian import Granian
        from granian.constants import Interfaces

        Granian(
            FACTORY,
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            workers=workers,
            factory=True,
        ).serve()
    return 0
