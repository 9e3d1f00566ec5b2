"""``streamboost serve TARGET``: an existing ASGI app behind StreamBoost, with no code change.

Every server here imports the app in each worker process, so the parent hands the target and
the options down through the environment and each worker builds its own ``StreamBoost`` from
``boosted_app()``. With several workers, Prometheus needs a shared multiprocess directory; one
is created (and removed at exit) when the user has not set ``PROMETHEUS_MULTIPROC_DIR``. The
server runs from its own command line, so its options pass through unchanged.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from typing import Any, Final

import orjson

from .._export.prometheus import _multiprocess
from .._middleware import StreamBoost
from .._types import ASGIApp

SERVERS: Final = ("uvicorn", "hypercorn", "granian", "gunicorn")
ENV_APP_DIR: Final = "STREAMBOOST_SERVE_APP_DIR"
ENV_TARGET: Final = "STREAMBOOST_SERVE_TARGET"
ENV_OPTIONS: Final = "STREAMBOOST_SERVE_OPTIONS"
FACTORY: Final = "streamboost._cli._serve:boosted_app"


def load_target(target: str) -> Any:
    """Import ``package.module:attribute`` (the attribute may be dotted)."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"target={target!r}: use 'package.module:app', e.g. 'myapp.main:app'")
    app_dir = os.environ.get(ENV_APP_DIR) or os.getcwd()
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)  # as uvicorn does: the user's modules live here
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
    _multiprocess.install()  # before the target's own values (no-op without a directory)
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
    app_dir: str | None = None,
    server_args: Sequence[str] = (),
) -> int:
    """Run ``target`` under ``server`` with ``workers`` processes, each wrapped in StreamBoost.

    ``server_args`` go to the server's own command line after streamboost's, e.g.
    ``["--max-requests", "1000"]`` for gunicorn or hypercorn.
    """
    if server not in SERVERS:
        raise ValueError(f"server={server!r}: use one of {', '.join(SERVERS)}")
    if workers < 1:
        raise ValueError(f"workers={workers!r} must be >= 1")
    try:
        importlib.import_module(server)
    except ImportError as exc:
        raise ValueError(f"server={server!r} is not installed: pip install {server}") from exc
    if app_dir is not None:
        if not os.path.isdir(app_dir):
            raise ValueError(f"app_dir={app_dir!r} is not a directory")
        os.environ[ENV_APP_DIR] = os.path.abspath(app_dir)
    os.environ[ENV_TARGET] = target
    os.environ[ENV_OPTIONS] = orjson.dumps(
        {"coalesce": coalesce, "metrics_path": metrics_path}
    ).decode()
    created = None
    # gunicorn's and granian's workers are forks of this process: a worker that exits (one
    # recycled by --max-requests) leaves through the finally below too, and must not remove
    # the directory the server's other and next workers write in.
    creator = os.getpid()
    if workers > 1 and not os.environ.get(_multiprocess.ENV_DIR):
        # Each worker writes its own files; a scrape of any worker adds them all up.
        created = tempfile.mkdtemp(prefix="streamboost-prometheus-")
        os.environ[_multiprocess.ENV_DIR] = created
        print(f"streamboost serve: {_multiprocess.ENV_DIR}={created}", file=sys.stderr)
    try:
        if workers > 1:
            # Before the target is imported here: any value it makes is file-backed, and
            # forked workers (granian, gunicorn) re-open theirs in their own slot.
            _multiprocess.install()
        load_target(target)  # fail here, with the reason, rather than in every worker
        return _run(server, _argv(server, host, port, workers) + list(server_args))
    finally:
        if created is not None and os.getpid() == creator:
            shutil.rmtree(created, ignore_errors=True)


def _argv(server: str, host: str, port: int, workers: int) -> list[str]:
    if server == "uvicorn":
        return [
            FACTORY,
            "--factory",
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
    if server == "hypercorn":
        # hypercorn evaluates the attribute: the call builds the app.
        return [FACTORY + "()", "--bind", f"{host}:{port}", "--workers", str(workers)]
    if server == "granian":
        return [FACTORY, "--factory", "--interface", "asgi", "--host", host, "--port", str(port),
                "--workers", str(workers)]  # fmt: skip
    argv = [FACTORY + "()", "--worker-class", "uvicorn.workers.UvicornWorker"]
    argv += ["--bind", f"{host}:{port}", "--workers", str(workers)]
    if importlib.util.find_spec("streamboost_gunicorn") is not None:
        argv += ["--config", "python:streamboost_gunicorn.config"]
    return argv


def _run(server: str, argv: list[str]) -> int:
    """The server's own command line, in this process."""
    try:
        if server == "uvicorn":
            from uvicorn.main import main as uvicorn_main

            uvicorn_main.main(args=argv, prog_name="uvicorn", standalone_mode=False)
        elif server == "hypercorn":
            from hypercorn.__main__ import main as hypercorn_main

            return hypercorn_main(argv)
        elif server == "granian":
            from granian.cli import cli as granian_cli

            granian_cli.main(
                args=argv, prog_name="granian", standalone_mode=False, auto_envvar_prefix="GRANIAN"
            )
        else:
            from gunicorn.app.wsgiapp import run as gunicorn_run  # type: ignore[import-untyped]

            sys.argv = ["gunicorn", *argv]
            gunicorn_run()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0
