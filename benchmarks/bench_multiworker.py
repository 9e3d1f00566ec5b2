"""Several workers: scrape time and files after many recycles, and requests/s of 4 workers vs 1.

    uv run python benchmarks/bench_multiworker.py [--recycles 100]

gunicorn with the streamboost_gunicorn config and 4 workers serves tests/multiworker_app.py.
It compares the /metrics scrape time (median of 30, after warm-up scrapes) and the file count
of a fresh start with the same after --recycles worker recycles (each a worker ended with
SIGTERM, as --max-requests ends it, and respawned by gunicorn; the recycling stops before the
scrapes are timed, so a cold worker's first scrape is not what is measured), then the
requests/s of the app's /stream with 4 workers against 1. Prints; never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def gunicorn(workers: int, directory: str, *extra: str) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:streamboost_gunicorn.config"]
    argv += ["-w", str(workers), "-b", f"127.0.0.1:{port}", *extra, "tests.multiworker_app:app"]
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                httpx.get(base + "/metrics", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


async def streams(base: str, count: int, concurrency: int, pids: set[str]) -> float:
    """Sends ``count`` streams; returns the seconds they took."""
    todo = iter(range(count))

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            for n in todo:
                for _ in range(40):  # a recycled worker drops connections it had not read
                    try:
                        r = await http.get("/stream", params={"n": n % 40})
                        pids.add(r.headers["x-worker-pid"])
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - start


def scrape_time(base: str) -> float:
    times = []
    with httpx.Client(base_url=base) as http:
        for _ in range(20):  # warm-up: each worker's first scrape imports and opens files
            http.get("/metrics")
        for _ in range(60):  # 30 timed scrapes; one on a recycled worker's closed connection
            start = time.perf_counter()
            try:
                http.get("/metrics")
            except httpx.TransportError:
                continue
            times.append(time.perf_counter() - start)
            if len(times) == 30:
                break
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recycles", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as fresh_dir, gunicorn(4, fresh_dir) as base:
        asyncio.run(streams(base, 200, 8, set()))
        fresh = scrape_time(base)
        fresh_files = len(os.listdir(fresh_dir))
    with tempfile.TemporaryDirectory() as recycled_dir:
        pids: set[str] = set()
        with gunicorn(4, recycled_dir) as base:
            recycles = 0
            for _ in range(args.recycles * 10):  # bounded
                if recycles >= args.recycles:
                    break
                seen: set[str] = set()
                asyncio.run(streams(base, 40, 8, seen))
                fresh_pids = seen - pids
                pids |= seen
                if fresh_pids:  # end one worker that served: gunicorn starts another
                    os.kill(int(min(fresh_pids)), signal.SIGTERM)
                    recycles += 1
            for _ in range(100):  # let the last respawn come up
                before = len(pids)
                asyncio.run(streams(base, 40, 8, pids))
                if len(pids) == before:
                    break
            asyncio.run(streams(base, 200, 8, set()))
            recycled = scrape_time(base)
            recycled_files = len(os.listdir(recycled_dir))
    print(f"fresh start, 4 workers: scrape {fresh * 1000:.2f} ms, {fresh_files} files")
    print(
        f"after {recycles} recycles ({len(pids)} worker processes in all): "
        f"scrape {recycled * 1000:.2f} ms "
        f"({recycled / fresh:.2f}x fresh; target <= 1.5x), {recycled_files} files "
        f"(by PID it would be about {3 * len(pids)})"
    )
    rates = {}
    for workers in (1, 4):
        with tempfile.TemporaryDirectory() as directory, gunicorn(workers, directory) as base:
            asyncio.run(streams(base, 300, 32, set()))  # warm up
            seconds = asyncio.run(streams(base, 3000, 32, set()))
            rates[workers] = 3000 / seconds
    print(
        f"requests/s on /stream: 1 worker {rates[1]:.0f}, 4 workers {rates[4]:.0f} "
        f"({rates[4] / rates[1]:.2f}x; {os.cpu_count()} CPUs)"
    )


if __name__ == "__main__":
    main()
