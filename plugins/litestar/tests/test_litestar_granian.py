"""streamboost-litestar on real granian, read by a real streaming client."""

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


def test_litestar_templates_streams_and_deferred_work_under_granian(tmp_path: Path) -> None:
    deferred = tmp_path / "deferred.txt"
    rooms = [1, 2, 3]
    port = free_port()
    argv = [sys.executable, "-m", "granian", "--interface", "asgi", "litestar_site:app"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with (
        serve(argv, port, HERE, {"DEFERRED_FILE": str(deferred)}) as (base, _stderr),
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        stream_rooms(client, "/chat/{room}/stream", rooms)
        assert client.get("/nowhere").status_code == 404
        metrics = scrape_when_counted(client, len(rooms) + 1)

    chat = "/chat/{room}/stream"
    requests = samples(metrics, "streamboost_http_requests_total")
    assert requests == {chat: 3.0, "unmatched": 1.0}
    assert_chat_metrics(metrics, chat, len(rooms))
    # Still sleeping when SIGTERM came: the plugin's lifespan exit drained it.
    assert sorted(deferred.read_text().splitlines()) == [f"room {room}" for room in rooms]
