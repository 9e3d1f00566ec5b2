"""``streamboost serve TARGET``: a plain app, unchanged, served behind StreamBoost."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from tests.needs import free_port

from metrics_apps import server_process
from streamboost._cli import main

EXPECTED = b"".join(f"data: token {n}\n\n".encode() for n in range(20)) + b"data: [DONE]\n\n"


def completed_streams(metrics: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("streamboost_streams_total{") and 'outcome="completed"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.parametrize(
    ("server", "workers"),
    [("uvicorn", 2), ("hypercorn", 1), ("granian", 1), ("granian", 2), ("gunicorn", 2)],
)
def test_serve_wraps_an_unchanged_app_under_each_server(
    server: str, workers: int, tmp_path: Path
) -> None:
    port = free_port()
    # Given here so the test leaves nothing behind (serve makes one in /tmp otherwise).
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)} if workers > 1 else {}
    argv = ["streamboost._cli", "serve", "tests.serve_target:app", "--server", server]
    argv += ["--port", str(port), "--workers", str(workers)]
    with server_process(argv, port, env) as base, httpx.Client(base_url=base) as client:
        streams = 6
        for _ in range(streams):
            assert client.get("/stream").content == EXPECTED  # bytes exactly as the app sent
        # Counted by StreamBoost in every worker; with two workers one scrape adds them up
        # (serve sets up PROMETHEUS_MULTIPROC_DIR for them).
        assert completed_streams(client.get("/metrics").text) == streams


def test_serve_rejects_a_target_it_cannot_import(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "tests.no_such_module:app"]) == 2
    assert "module 'tests.no_such_module' not found" in capsys.readouterr().err
    assert main(["serve", "tests.serve_target"]) == 2
    assert "use 'package.module:app'" in capsys.readouterr().err


def test_serve_passes_server_options_and_removes_its_directory(tmp_path: Path) -> None:
    port = free_port()
    argv = ["streamboost._cli", "serve", "serve_target:app", "--app-dir", "tests"]
    argv += ["--server", "gunicorn", "--port", str(port), "--workers", "2"]
    argv += ["--", "--max-requests", "2"]  # gunicorn's own option: workers recycled
    env = {"PROMETHEUS_MULTIPROC_DIR": "", "TMPDIR": str(tmp_path)}
    with server_process(argv, port, env) as base, httpx.Client(base_url=base) as client:
        for _ in range(12):  # 2 x 2 per generation: workers recycled twice at least
            assert across_recycling(client, "/stream").content == EXPECTED
        made = [d for d in tmp_path.iterdir() if d.name.startswith("streamboost-prometheus-")]
        assert len(made) == 1
        assert completed_streams(scrape_across_recycling(client)) == 12
    assert not made[0].exists()  # serve removed the directory it made


def across_recycling(client: httpx.Client, path: str) -> httpx.Response:
    """GET ``path``, retried when the connection lands on a worker gunicorn is recycling
    (``--max-requests``): that worker closes it before the app sees the request, and the
    next one answers."""
    for attempt in range(3):
        try:
            return client.get(path, headers={"connection": "close"})
        except httpx.TransportError:
            if attempt == 2:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def scrape_across_recycling(client: httpx.Client) -> str:
    return across_recycling(client, "/metrics").text


def test_a_worker_that_leaves_keeps_the_directory_of_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gunicorn (or granian) worker is a fork of ``serve``'s process: one recycled by
    ``--max-requests`` returns through ``serve``'s cleanup too. It used to remove the
    directory, and the next worker then failed to boot, which stopped the whole server."""
    from streamboost._cli import _serve

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # TMPDIR is read again
    # serve() sets these in os.environ: set first, so that monkeypatch puts back what was.
    for name in ("PROMETHEUS_MULTIPROC_DIR", _serve.ENV_TARGET, _serve.ENV_OPTIONS):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setattr(_serve._multiprocess, "install", lambda: None)  # no global change
    monkeypatch.setattr(_serve, "load_target", lambda target: None)
    after_worker: list[bool] = []

    def forking_server(server: str, argv: list[str]) -> int:
        directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        child = os.fork()
        if child == 0:
            return 0  # the worker: back through serve()'s cleanup, then os._exit below
        os.waitpid(child, 0)
        after_worker.append(os.path.isdir(directory))
        return 0

    monkeypatch.setattr(_serve, "_run", forking_server)
    parent = os.getpid()
    try:
        _serve.serve("serve_target:app", server="gunicorn", workers=2)
    finally:
        if os.getpid() != parent:
            os._exit(0)
    assert after_worker == [True]
    assert not any(tmp_path.iterdir())  # the server's own exit removed it
