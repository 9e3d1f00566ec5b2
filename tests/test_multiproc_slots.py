"""Worker slots: the lowest free slot is claimed, a dead slot's live gauges read 0, never vanish.

Each worker is a real child process (SIGKILLed where it matters), so the kernel's release of
its ``flock`` is what the code relies on, as with a real server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from streamboost._export.prometheus._multiprocess import reap_dead_slots

_WORKER = textwrap.dedent(
    """
    import os, sys
    from streamboost._export.prometheus._multiprocess import install, worker_slot
    install()
    from prometheus_client import CollectorRegistry, Counter, Gauge
    registry = CollectorRegistry()
    active = Gauge("t_active", "open", multiprocess_mode="livesum", registry=registry)
    served = Counter("t_served", "served", registry=registry)
    active.inc(int(sys.argv[1]))
    served.inc()
    print(worker_slot(), flush=True)
    sys.stdin.readline()  # hold the slot until told (or killed)
    """
)


def _worker(directory: Path, open_streams: int) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    process = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(open_streams)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def _scrape(directory: Path) -> str:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return generate_latest(registry).decode()


def test_a_dead_slot_reads_zero_and_its_slot_is_reused(tmp_path: Path) -> None:
    first, first_slot = _worker(tmp_path, 3)
    second, second_slot = _worker(tmp_path, 2)
    try:
        assert (first_slot, second_slot) == (0, 1)  # the lowest free slots
        assert "t_active 5.0" in _scrape(tmp_path)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        assert reap_dead_slots(str(tmp_path)) == [0]
        text = _scrape(tmp_path)
        assert "t_active 2.0" in text  # the dead worker's open streams no longer count
        assert "t_served_total 2.0" in text  # its counter still does
        assert reap_dead_slots(str(tmp_path)) == []  # nothing left to change
        third, third_slot = _worker(tmp_path, 1)
        try:
            assert third_slot == 0  # the dead worker's slot, not a new file
            text = _scrape(tmp_path)
            assert "t_active 3.0" in text
            assert "t_served_total 3.0" in text
        finally:
            third.kill()
            third.wait(timeout=30)
        second.kill()
        second.wait(timeout=30)
        reap_dead_slots(str(tmp_path))
        # Every worker is dead: the gauge reads 0 and is still exported, as in one process.
        text = _scrape(tmp_path)
        assert "t_active 0.0" in text
        assert len(list(tmp_path.glob("*.db"))) == 4  # 2 slots x (gauge, counter)
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
