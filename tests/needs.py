"""What a test needs from the machine: one place that decides between fail and skip.

In CI (``STREAMBOOST_REQUIRE_SERVICES=1``, exported by ``.ci/run``) a missing service or tool
fails the test; on a laptop it skips with the reason and the fix.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest


def services_required() -> bool:
    return os.environ.get("STREAMBOOST_REQUIRE_SERVICES", "") not in ("", "0", "false")


def missing(message: str) -> None:
    """Fail (CI) or skip (elsewhere) with ``message``; never returns."""
    if services_required():
        pytest.fail(message + " (STREAMBOOST_REQUIRE_SERVICES is set, so this fails)")
    pytest.skip(message)


def tool(name: str, install_hint: str) -> str:
    """The path of the command ``name``; fails or skips when it is not installed."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed; install it with: {install_hint}")
        raise AssertionError("unreachable")  # missing() raises
    return path


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for servers that need it before they start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def scratch_prefix(redis_url: str, template: str) -> AsyncIterator[str]:
    """A Redis key prefix of this test's own (``template`` with ``{}`` for a random part);
    every key under it is deleted afterwards."""
    import redis.asyncio as aioredis

    name = template.format(uuid.uuid4().hex[:12])
    yield name
    client: Any = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{name}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def wait_until_listening(
    port: int, what: str, *, seconds: float = 20, waiting: Callable[[], bool] = lambda: True
) -> None:
    """Until 127.0.0.1:``port`` accepts, bounded by ``seconds``; stops early (no error) once
    ``waiting()`` says the server is no longer starting (its startup failed)."""
    deadline = time.monotonic() + seconds
    while waiting():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen on {port} within {seconds} s") from None
            time.sleep(0.05)
