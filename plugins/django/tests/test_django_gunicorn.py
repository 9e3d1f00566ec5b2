"""streamboost-django on real gunicorn with uvicorn workers, read by a real streaming client."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from tests.needs import free_port
from tests.plugin_servers import (
    assert_chat_metrics,
    samples,
    scrape_when_counted,
    serve,
    stream_rooms,
)

HERE = Path(__file__).resolve().parent


@contextmanager
def gunicorn(port: int, env: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    argv = [sys.executable, "-m", "gunicorn", "django_site:application"]
    argv += ["-k", "uvicorn.workers.UvicornWorker", "-w", "1", "-b", f"127.0.0.1:{port}"]
    with serve([*argv, "--graceful-timeout", "10"], port, HERE, env) as served:
        yield served


def test_django_routes_streams_and_deferred_work_under_gunicorn(tmp_path: Path) -> None:
    deferred = tmp_path / "deferred.txt"
    rooms = [1, 2, 3]
    with (
        gunicorn(free_port(), {"DEFERRED_FILE": str(deferred)}) as (base, stderr),
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        stream_rooms(client, "/api/chat/{room}/stream", rooms)
        assert client.get("/sync/hello").text.count("data: hello") == 3
        assert client.get("/sync/again").status_code == 200
        assert client.get("/nowhere").status_code == 404
        metrics = scrape_when_counted(client, 6)

    chat = "/api/chat/<int:room>/stream"
    requests = samples(metrics, "streamboost_http_requests_total")
    assert requests == {chat: 3.0, "/sync/<slug:name>": 2.0, "unmatched": 1.0}
    assert_chat_metrics(metrics, chat, len(rooms))
    # defer() work was still sleeping when SIGTERM came: the shutdown drained it (Django
    # refuses the lifespan scope; StreamBoost ran the lifespan for it).
    assert sorted(deferred.read_text().splitlines()) == [f"room {room}" for room in rooms]
    # One warning per view that streams a sync iterator, not one per request.
    assert stderr[0].count("streams a sync iterator under ASGI") == 1, stderr[0][-3000:]
    assert "'buffered'" in stderr[0]
