"""Shared fixtures: real services, recorded ASGI messages, loopback servers.

Services: tests that need Redis or PostgreSQL ask for the ``redis_url`` or ``postgres_dsn``
fixture. On a laptop without the service they skip with the reason; in CI
(``STREAMBOOST_REQUIRE_SERVICES=1``, exported by ``.ci/run``) they fail instead.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from tests.needs import missing

from streamboost._cli._loopback import uvicorn_in_thread

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _need_service(name: str, host: str, port: int, start_hint: str) -> None:
    if _reachable(host, port):
        return
    missing(f"{name} is not reachable on {host}:{port}; start it with: {start_hint}")


@pytest.fixture
def redis_url() -> str:
    """URL of the real Redis. Each test should use its own key prefix or namespace."""
    _need_service(
        "Redis",
        REDIS_HOST,
        REDIS_PORT,
        "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''",
    )
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture
def postgres_dsn() -> str:
    """DSN of the real PostgreSQL (trust auth, database ``test``)."""
    _need_service(
        "PostgreSQL",
        POSTGRES_HOST,
        POSTGRES_PORT,
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    )
    user = os.environ.get("STREAMBOOST_PGUSER", "postgres")
    return f"postgresql://{user}@{POSTGRES_HOST}:{POSTGRES_PORT}/test"


@pytest.fixture
def serve() -> Iterator[object]:
    """``with serve(app) as base_url:`` runs ``app`` under real uvicorn on 127.0.0.1."""
    yield uvicorn_in_thread
