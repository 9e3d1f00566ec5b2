"""streamboost-django on real gunicorn with uvicorn workers, read by a real streaming client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from tests.needs import free_port

HERE = Path(__file__).resolve().parent


def samples(metrics: str, family: str) -> dict[str, float]:
    """``route -> value`` of one family's samples (one worker, so no summing across pids)."""
    out: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith(family + "{"):
            route = line.split('route="', 1)[1].split('"', 1)[0]
            out[route] = out.get(route, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def scrape_when_counted(client: httpx.Client, requests: int) -> str:
    """The metrics once ``requests`` responses are counted: a response is counted just after
    its last byte went out, so the client may ask before the last one is."""
    for _ in range(50):
        metrics = client.get("/metrics").text
        if sum(samples(metrics, "streamboost_http_requests_total").values()) >= requests:
            return metrics
        time.sleep(0.05)
    return metrics


@contextmanager
def gunicorn(port: int, env: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    """Serve the site; yields its URL and a list that gets the server's stderr once it stopped."""
    argv = [sys.executable, "-m", "gunicorn", "django_site:application", "--chdir", str(HERE)]
    argv += ["-k", "uvicorn.workers.UvicornWorker", "-w", "1", "-b", f"127.0.0.1:{port}"]
    argv += ["--graceful-timeout", "10"]
    proc = subprocess.Popen(
        argv,
        env={**os.environ, **env},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stderr: list[str] = []
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                httpx.get(base + "/metrics", timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not answer within 30 s") from None
                time.sleep(0.1)
        yield base, stderr
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            _out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _out, err = proc.communicate(timeout=10)
        stderr.append(err.decode())


def test_django_routes_streams_and_deferred_work_under_gunicorn(tmp_path: Path) -> None:
    deferred = tmp_path / "deferred.txt"
    rooms = [1, 2, 3]
    with (
        gunicorn(free_port(), {"DEFERRED_FILE": str(deferred)}) as (base, stderr),
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        for room in rooms:
            with client.stream("GET", f"/api/chat/{room}/stream") as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                text = "".join(response.iter_text())
            assert text.count("data: token") == 20 and text.endswith("data: [DONE]\n\n")
        assert client.get("/sync/hello").text.count("data: hello") == 3
        assert client.get("/sync/again").status_code == 200
        assert client.get("/nowhere").status_code == 404
        metrics = scrape_when_counted(client, 6)

    chat = "/api/chat/<int:room>/stream"
    requests = samples(metrics, "streamboost_http_requests_total")
    assert requests == {chat: 3.0, "/sync/<slug:name>": 2.0, "unmatched": 1.0}
    ttft = samples(metrics, "streamboost_time_to_first_token_seconds_count")
    assert ttft[chat] == len(rooms)
    events = samples(metrics, "streamboost_stream_events_total")[chat]
    writes = samples(metrics, "streamboost_stream_writes_total")[chat]
    assert events == len(rooms) * 21
    assert writes < events
    # defer() work was still sleeping when SIGTERM came: the shutdown drained it (Django
    # refuses the lifespan scope; StreamBoost ran the lifespan for it).
    assert sorted(deferred.read_text().splitlines()) == [f"room {room}" for room in rooms]
    # One warning per view that streams a sync iterator, not one per request.
    assert stderr[0].count("streams a sync iterator under ASGI") == 1, stderr[0][-3000:]
    assert "'buffered'" in stderr[0]
