"""``streamboost demo`` runs both modes on real uvicorn and prints the side-by-side table."""

from __future__ import annotations

import pytest

from streamboost._cli import main


def test_demo_prints_side_by_side_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--requests", "2", "--concurrency", "2", "--tokens", "3"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.split()[:2] == ["naive", "boosted"])
    assert header.split() == ["naive", "boosted", "boosted,", "no", "retrieval"]
    # stdout is not a terminal here: progress lines (flushed) come before the table.
    progress = [line for line in out.splitlines() if line.startswith("streamboost demo: ")]
    assert progress[0].startswith("streamboost demo: the example chat backend, naive then")
    assert progress[1] == "streamboost demo: naive: streaming 2 requests"
    assert progress[2].startswith("streamboost demo: naive: 1/2 streams done (")
    assert progress[3].startswith("streamboost demo: naive: 2/2 streams done (")
    assert "streamboost demo: boosted: warming the cache with 4 streams" in progress
    for row in ("TTFT p50", "TTFT p95", "total time p50", "writes per stream", "cache hit rate"):
        assert row in out
    rows = {
        line[:32].strip(): line[32:].split()
        for line in out.splitlines()[out.splitlines().index(header) + 2 :]
        if line.strip()
    }
    naive, boosted, no_retrieval = (float(v) for v in rows["TTFT p50"][::2])
    # The naive mode waits for every simulated call in turn: 1.3 s plus the model's 0.2 s;
    # boosted runs the loads at once from a warm cache, and without retrieval only the model's
    # own 0.2 s is left.
    assert naive >= 1300
    assert naive > boosted > no_retrieval >= 200
    assert rows["writes blocking the stream"] == ["3.0", "0.0", "0.0"]
    assert rows["cache hit rate"] == ["-", "100%", "100%"]
    # The phase breakdown: the boosted mode's rag phase is StreamBoost's own timing of a
    # 500 ms retrieval, every measured stream included (none missed at the end).
    assert float(rows["rag"][0]) >= 490 and float(rows["rag"][2]) >= 490
    assert float(rows["rag"][4]) < 100
    assert float(rows["inline writes (all)"][0]) >= 740  # session 150 + messages 2 x 300


def test_demo_rejects_bad_counts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--requests", "0"])
    assert "must be a whole number >= 1" in capsys.readouterr().err


def test_demo_serve_keeps_the_boosted_app_up_and_prints_the_urls(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["demo", "--serve", "--port", "0", "--duration", "3", "--tokens", "3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    metrics_line = next(line for line in out.splitlines() if line.startswith("Prometheus metrics"))
    assert metrics_line.split()[-1].startswith("http://127.0.0.1:")
    assert metrics_line.endswith("/metrics")
    streams = int(out.split("stopped after ")[1].split()[0])
    assert streams >= 1  # the background load streamed from the served app
