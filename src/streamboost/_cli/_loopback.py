"""Run an ASGI app under real uvicorn on 127.0.0.1 in a background thread.

Used by the demo, the benchmarks and the end-to-end tests: one place that knows how to
start a server on a free loopback port, wait until it listens, and stop it cleanly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def uvicorn_in_thread(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 10.0,
    **kwargs: Any,
) -> Iterator[str]:
    """Serve ``app`` with uvicorn on ``host`` and yield its base URL (``http://127.0.0.1:PORT``).

    ``port=0`` picks a free port. Extra keyword arguments go to ``uvicorn.Config``.
    """
    if not host.startswith("127.") and host not in ("localhost", "::1"):
        raise ValueError(f"host={host!r} is not a loopback address; use 127.0.0.1")
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "uvicorn is not installed; install it with: pip install uvicorn"
        ) from exc

    kwargs.setdefault("log_level", "warning")
    kwargs.setdefault("lifespan", "on")
    config = uvicorn.Config(app, host=host, port=port, **kwargs)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="streamboost-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"uvicorn failed to start on {host}:{port}")
        if time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5)
            raise RuntimeError(f"uvicorn did not start within {startup_timeout} s")
        time.sleep(0.01)
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(15)
