"""Real servers for the framework plugins' tests (plugins/*/tests): start, scrape, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


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
def serve(
    argv: list[str], port: int, cwd: Path, env: dict[str, str], *, stop_group: bool = True
) -> Iterator[tuple[str, list[str]]]:
    """Run ``argv`` in ``cwd``; yields its URL and a list that gets its stderr once it stopped.

    The stop is SIGTERM to the whole process group, or with ``stop_group=False`` to the master
    only (hypercorn's spawned workers keep the default SIGTERM action: signalled themselves,
    they die at once, without their lifespan shutdown).
    """
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
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
                raise RuntimeError(f"{argv[:3]} exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                httpx.get(base + "/metrics", timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[:3]} did not answer within 30 s") from None
                time.sleep(0.1)
        yield base, stderr
    finally:
        try:
            if stop_group:
                os.killpg(proc.pid, signal.SIGTERM)
            else:
                proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _out, err = proc.communicate(timeout=10)
        stderr.append(err.decode())


def stream_rooms(client: httpx.Client, path: str, rooms: list[int]) -> None:
    """One SSE chat stream per room (``path`` has ``{room}``), each read whole and checked."""
    for room in rooms:
        with client.stream("GET", path.format(room=room)) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            text = "".join(response.iter_text())
        assert text.count("data: token") == 20 and text.endswith("data: [DONE]\n\n")


def assert_chat_metrics(metrics: str, template: str, streams: int) -> None:
    """The chat route's streams, labelled by ``template``: one TTFT each, fewer writes."""
    ttft = samples(metrics, "streamboost_time_to_first_token_seconds_count")
    assert ttft[template] == streams
    events = samples(metrics, "streamboost_stream_events_total")[template]
    assert events == streams * 21  # 20 tokens and [DONE]
    assert samples(metrics, "streamboost_stream_writes_total")[template] < events
