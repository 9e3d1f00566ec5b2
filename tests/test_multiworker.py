"""Two workers or more under gunicorn, uvicorn, hypercorn and granian: every metric true.

Each server runs the command line the README gives, with a shared PROMETHEUS_MULTIPROC_DIR,
workers recycled (max requests, where the server has it) and one worker SIGKILLed while it
holds open streams. Then 20 scrapes must each show the single-process families, the exact
request and cache-call counts, no open stream, no counter going down, and files bounded by the
worker slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.needs import free_port

from metrics_apps import server_process

APP = "tests.multiworker_app:app"
WORKERS = 2
STREAMS = 1000
RETRIED: list[int] = []  # requests sent again: the server may or may not have served them
SLOW = 6  # open streams held across the SIGKILL
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def command(server: str, port: int) -> list[str]:
    w, bind = str(WORKERS), f"127.0.0.1:{port}"
    if server == "gunicorn":
        return ["gunicorn", "-c", "python:streamboost_gunicorn.config", "-w", w, "-b", bind,
                "--max-requests", "150", APP]  # fmt: skip
    if server == "uvicorn":
        return ["uvicorn", "--workers", w, "--port", str(port), "--limit-max-requests", "150",
                APP]  # fmt: skip
    if server == "hypercorn":
        return ["hypercorn", "-w", w, "-b", bind, "--max-requests", "150", APP]
    # granian has no max-requests (its lifetime is >= 60 s): recycled by the SIGKILL only.
    return ["granian", "--interface", "asgi", "--workers", w, "--port", str(port),
            "--respawn-failed-workers", APP]  # fmt: skip


def samples(text: str) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            out[match[1], match[2] or ""] = float(match[3])
    return out


def total(values: dict[tuple[str, str], float], name: str, *labels: str) -> float:
    return sum(v for (n, lab), v in values.items() if n == name and all(x in lab for x in labels))


def families(values: dict[tuple[str, str], float]) -> set[str]:
    names = {re.sub(r"_(total|bucket|sum|count|created)$", "", n) for n, _ in values}
    return {n for n in names if n.startswith("streamboost_")}


async def load(base: str, count: int, pids: set[str]) -> int:
    """``count`` streams, 8 at a time, each on its own connection; returns those completed."""
    done = 0
    queue = iter(range(count))

    async def client() -> None:
        nonlocal done
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            for n in queue:
                response = await _get(http, n)
                assert response.status_code == 200
                assert response.text.endswith("data: [DONE]\n\n")
                pids.add(response.headers["x-worker-pid"])
                done += 1

    await asyncio.gather(*(client() for _ in range(8)))
    return done


async def _get(http: httpx.AsyncClient, n: int) -> httpx.Response:
    # A worker that exits (recycled) closes the connections it accepted but has not read yet:
    # no response, the app never ran, so a client retries. Bounded: 40 tries, 10 s.
    for attempt in range(40):
        try:
            return await http.get("/stream", params={"n": n % 40}, headers={"connection": "close"})
        except (httpx.RemoteProtocolError, httpx.ConnectError, httpx.ReadError):
            if attempt == 39:
                raise
            RETRIED.append(n)
            await asyncio.sleep(0.25)
    raise AssertionError("unreachable")


def live_workers(directory: Path, server_pid: int) -> dict[int, int]:
    """slot -> pid of the workers alive now (from the slot lock files)."""
    out = {}
    for path in glob.glob(str(directory / "slot_*.lock")):
        text = Path(path).read_text().strip()
        if text and int(text) != server_pid and Path(f"/proc/{text}").exists():
            out[int(Path(path).name[5:-5])] = int(text)
    return out


async def sigkill_with_open_streams(base: str, directory: Path, server_pid: int) -> int:
    """Open SLOW streams, SIGKILL one worker that holds some, close the rest; returns the pid."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        streams = []
        for _ in range(SLOW):
            cm = http.stream("GET", "/slow", headers={"connection": "close"})
            response = await cm.__aenter__()
            streams.append((cm, response))
        holders = {r.headers["x-worker-pid"] for _, r in streams}
        victim = int(sorted(holders)[0])
        os.kill(victim, signal.SIGKILL)
        for cm, _ in streams:
            with contextlib.suppress(httpx.HTTPError):  # the killed worker's end with it
                await cm.__aexit__(None, None, None)
    return victim


@pytest.mark.parametrize("server", ["gunicorn", "uvicorn", "hypercorn", "granian"])
def test_every_metric_true_with_two_workers(server: str, tmp_path: Path) -> None:
    # The reference: which families one process exports for the same traffic.
    port = free_port()
    with server_process(["uvicorn", "--port", str(port), APP], port, {}) as base:
        asyncio.run(load(base, 20, set()))
        reference = families(samples(httpx.get(base + "/metrics", timeout=60).text))
    assert {"streamboost_cache_requests", "streamboost_deferred_items"} <= reference

    directory = tmp_path / "metrics"
    directory.mkdir()
    port = free_port()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    pids: set[str] = set()
    RETRIED.clear()
    with server_process(command(server, port), port, env) as base:
        server_pid = 0  # no master holds a slot: every slot holder is a worker
        made = asyncio.run(load(base, STREAMS // 2, pids))
        if server != "hypercorn":
            # (hypercorn stops every worker, and itself, when one exits with an error.)
            victim = asyncio.run(sigkill_with_open_streams(base, directory, server_pid))
            _wait_for(lambda: len(live_workers(directory, server_pid)) == WORKERS
                      and victim not in live_workers(directory, server_pid))  # fmt: skip
        made += asyncio.run(load(base, STREAMS - STREAMS // 2, pids))
        assert made == STREAMS
        # Recycled or respawned: more workers served than are alive at once.
        assert len(pids) > WORKERS, pids

        last: list[object] = []

        def settled() -> bool:
            values = samples(httpx.get(base + "/metrics", timeout=60).text)
            last[:] = [
                total(values, "streamboost_http_requests_total", 'route="/stream"'),
                total(values, "streamboost_streams_active"),
                total(values, "streamboost_deferred_queue_depth"),
            ]
            return (
                made <= last[0] <= made + len(RETRIED)  # type: ignore[operator]
                and total(values, "streamboost_streams_active") == 0
                and total(values, "streamboost_deferred_queue_depth") == 0
            )

        _wait_for(settled, lambda: f"requests, open streams, queue depth: {last} ({made} made)")
        previous: dict[tuple[str, str], float] = {}
        slots = max(len(glob.glob(str(directory / "slot_*.lock"))), 1)
        for _ in range(20):
            values = samples(httpx.get(base + "/metrics", timeout=60).text)
            assert reference <= families(values), reference - families(values)
            served = total(values, "streamboost_http_requests_total", 'route="/stream"')
            # Exactly the requests made, but for a retried one the server may have served.
            assert made <= served <= made + len(RETRIED), (served, made, RETRIED)
            calls = total(values, "streamboost_cache_requests_total", 'cache="multiworker"')
            assert calls == served  # hits + misses + stale + errors: one call per stream
            assert total(values, "streamboost_deferred_items_total", 'outcome="written"') == served
            assert total(values, "streamboost_streams_active") == 0
            for key, value in values.items():
                if key[0].endswith(("_total", "_count", "_bucket")) and key in previous:
                    assert value >= previous[key], key
            previous = values
            # Bounded by the slots (one set of files each), never by the workers started.
            files = os.listdir(directory)
            assert len([f for f in files if f.endswith(".db")]) <= 3 * slots
            assert slots <= WORKERS, files


def _wait_for(
    condition: Callable[[], bool], why: Callable[[], str] = str, timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {why()}")
        time.sleep(0.2)
