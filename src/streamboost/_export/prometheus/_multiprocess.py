"""Multiprocess Prometheus: worker slots instead of PIDs, and the checks of a late setup.

prometheus_client names each worker's files by its process identifier (the PID by default), so
every recycled worker leaves files behind and its live gauges (open streams) count forever.
Here a worker claims the lowest free *slot*: ``slot_<n>.lock`` in the metrics directory, held
with ``flock`` (the kernel releases it on any death, SIGKILL included). The slot number is the
process identifier: a new worker in a dead worker's slot continues its counters (they never go
down) and starts with its live gauges at 0. Files stay bounded by the most workers alive at
once.
"""

from __future__ import annotations

import fcntl
import glob
import logging
import multiprocessing
import os
import sys
import threading
from typing import Final

from prometheus_client import REGISTRY, values
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.mmap_dict import MmapedDict

ENV_DIR: Final = "PROMETHEUS_MULTIPROC_DIR"
_MAX_SLOTS: Final = 4096
_CLAIM_LOCK: Final = "slots.lock"

logger = logging.getLogger("streamboost")


def multiprocess_dir() -> str | None:
    return os.environ.get(ENV_DIR) or None


def _slot_path(directory: str, slot: int) -> str:
    return os.path.join(directory, f"slot_{slot}.lock")


def _open_lock(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


class _Claims:
    """The directory-wide lock that serialises claiming and reaping (both are rare)."""

    def __init__(self, directory: str) -> None:
        self.fd = _open_lock(os.path.join(directory, _CLAIM_LOCK))

    def __enter__(self) -> _Claims:
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)  # closing releases the lock


class _Slot:
    """This process's slot; re-claimed when the PID changes (the process was forked)."""

    def __init__(self) -> None:
        self.pid = 0
        self.number = -1
        self.fd: int | None = None
        self.lock = threading.Lock()

    def identifier(self) -> str:
        # Called by prometheus_client on every value update: one getpid and a compare.
        if self.pid != os.getpid():
            with self.lock:
                if self.pid != os.getpid():
                    self.claim()
        return str(self.number)

    def claim(self) -> None:
        directory = multiprocess_dir()
        if directory is None:
            raise RuntimeError(f"{ENV_DIR} is not set; set it to an empty directory")
        if self.fd is not None:
            os.close(self.fd)  # inherited over fork: the parent keeps its own slot
            self.fd = None
        with _Claims(directory):
            for number in range(_MAX_SLOTS):
                fd = _open_lock(_slot_path(directory, number))
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                # The previous holder is dead: its open streams and queue depth are not ours.
                zero_live_gauges(number, directory)
                self.fd, self.number, self.pid = fd, number, os.getpid()
                return
        raise RuntimeError(
            f"{directory}: all {_MAX_SLOTS} worker slots are held; is {ENV_DIR} shared by "
            "several servers? Give each server its own directory"
        )


_slot = _Slot()


def worker_slot() -> int:
    """The slot of this process (claimed now if it has none yet)."""
    return int(_slot.identifier())


def installed() -> bool:
    return bool(getattr(values.ValueClass, "_streamboost_slots", False))


def install() -> None:
    """Make prometheus_client's values file-backed and slot-named in this process (idempotent).

    Called before the first ``streamboost_*`` value is made, so it also repairs the usual
    late setup: prometheus_client imported (in memory) before ``PROMETHEUS_MULTIPROC_DIR`` was
    set, then the process forked into workers.
    """
    if installed() or multiprocess_dir() is None:
        return
    directory = multiprocess_dir()
    assert directory is not None
    if not os.path.isdir(directory):
        raise ValueError(
            f"{ENV_DIR}={directory!r} is not a directory; create it (empty) before the workers "
            "start, or unset it for single-process metrics"
        )
    if not getattr(values.ValueClass, "_multiprocess", False):
        _report_in_memory(directory)
    value_class = values.MultiProcessValue(process_identifier=_slot.identifier)  # type: ignore[no-untyped-call]
    value_class._streamboost_slots = True
    values.ValueClass = value_class


def _report_in_memory(directory: str) -> None:
    names = sorted(
        name
        for collector, collector_names in list(REGISTRY._collector_to_names.items())
        if isinstance(collector, MetricWrapperBase)
        for name in collector_names[:1]
    )
    if names:
        logger.error(
            "%s=%s was set after prometheus_client made these metrics in memory: %s. Their "
            "values stay in this worker and /metrics will not show them summed; set %s in the "
            "environment before the server starts (or run under 'streamboost serve' or the "
            "streamboost_gunicorn config)",
            ENV_DIR,
            directory,
            ", ".join(names),
            ENV_DIR,
        )


_warned_workers = False


def check_single_process() -> None:
    """Log once when this process looks like one of several workers without a shared directory."""
    global _warned_workers
    if _warned_workers:
        return
    worker = multiprocessing.parent_process() is not None or "gunicorn.arbiter" in sys.modules
    if worker:
        _warned_workers = True
        logger.error(
            "streamboost runs in a worker process but %s is not set: each worker serves only "
            "its own counts on /metrics. Set %s to an empty directory before the server starts "
            "(or use 'streamboost serve --workers N', or the streamboost_gunicorn config)",
            ENV_DIR,
            ENV_DIR,
        )


def _live_gauge_files(directory: str, slot: int) -> list[str]:
    return glob.glob(os.path.join(directory, f"gauge_live*_{slot}.db"))


def zero_live_gauges(slot: int, directory: str) -> bool:
    """Set every live gauge value of ``slot`` to 0; True when one was not 0 already.

    prometheus_client's ``mark_process_dead`` deletes the files instead, so a family whose
    every worker died would vanish from ``/metrics`` until a live worker sets it again; a
    single process shows such a gauge as 0, and so does this. Only ``live*`` gauge modes are
    touched: a dead slot adds 0 to a ``livesum``, and its keys are bounded by the label sets.
    """
    changed = False
    for path in _live_gauge_files(directory, slot):
        mmap = MmapedDict(path)  # type: ignore[no-untyped-call]
        try:
            for key, value, _timestamp in list(mmap.read_all_values()):  # type: ignore[no-untyped-call]
                if value != 0:
                    mmap.write_value(key, 0.0, 0.0)  # type: ignore[no-untyped-call]
                    changed = True
        finally:
            mmap.close()  # type: ignore[no-untyped-call]
    return changed


def reap_dead_slots(directory: str) -> list[int]:
    """Zero the live gauges of slots whose holder died; return the slots that changed."""
    reaped: list[int] = []
    own = _slot.number if _slot.pid == os.getpid() else -1
    with _Claims(directory):
        for path in glob.glob(os.path.join(directory, "slot_*.lock")):
            number = int(os.path.basename(path)[5:-5])
            if number == own or not _live_gauge_files(directory, number):
                continue
            fd = _open_lock(path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # alive
            finally:
                os.close(fd)
            if zero_live_gauges(number, directory):
                reaped.append(number)
    return reaped


def clear_directory(directory: str) -> None:
    """Empty the metrics directory (at server start: no values of a previous run)."""
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith((".db", ".lock")):
            os.remove(os.path.join(directory, name))
