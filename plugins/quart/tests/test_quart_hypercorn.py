"""streamboost-quart on real hypercorn, read by a real streaming client."""

from __future__ import annotations

import sys
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


def test_quart_rules_streams_and_deferred_work_under_hypercorn(tmp_path: Path) -> None:
    deferred = tmp_path / "deferred.txt"
    rooms = [1, 2, 3]
    port = free_port()
    argv = [sys.executable, "-m", "hypercorn", "quart_site:asgi", "-b", f"127.0.0.1:{port}"]
    argv += ["--graceful-timeout", "10"]
    with (
        # SIGTERM to hypercorn's master only, as systemd KillMode=mixed or a container's PID 1
        # gets it: the master tells the worker to shut down (lifespan, defer() drain); a worker
        # signalled itself dies at once (see the README's Quart section).
        serve(argv, port, HERE, {"DEFERRED_FILE": str(deferred)}, stop_group=False) as (
            base,
            stderr,
        ),
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        stream_rooms(client, "/chat/{room}/stream", rooms)
        assert client.get("/nowhere").status_code == 404
        metrics = scrape_when_counted(client, len(rooms) + 1)

    chat = "/chat/<int:room>/stream"
    requests = samples(metrics, "streamboost_http_requests_total")
    assert requests == {chat: 3.0, "unmatched": 1.0}
    assert_chat_metrics(metrics, chat, len(rooms))
    # defer() work still sleeping when SIGTERM came was drained at lifespan shutdown.
    assert sorted(deferred.read_text().splitlines()) == [f"room {room}" for room in rooms], stderr
