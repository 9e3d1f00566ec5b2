"""gunicorn -c python:streamboost_gunicorn.config: an unchanged app, every worker on /metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from tests.needs import free_port

ROOT = Path(__file__).resolve().parents[3]


def test_config_clears_the_directory_wraps_the_app_and_sums_the_workers(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    stale = directory / "counter_7.db"
    stale.write_bytes(b"left by a previous run")
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:streamboost_gunicorn.config"]
    argv += ["-w", "2", "-b", f"127.0.0.1:{port}", "tests.serve_target:app"]
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(150):  # bounded: 30 s
            try:
                httpx.get(base + "/metrics", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, "gunicorn exited"
                time.sleep(0.2)
        assert not stale.exists()  # cleared at start
        with httpx.Client(base_url=base) as client:
            for _ in range(10):
                client.get("/stream", headers={"connection": "close"})
            text = client.get("/metrics").text
        # serve_target knows nothing of streamboost: the config wrapped it in every worker.
        counted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith('streamboost_http_requests_total{method="GET",route="/stream"')
        )
        assert counted == 10
        slots = sorted(p.name for p in directory.glob("slot_*.lock"))
        assert slots == ["slot_0.lock", "slot_1.lock"]  # named by slot, not by PID
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
