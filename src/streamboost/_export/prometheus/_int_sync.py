"""Multiprocess mode for the plain-int stats (cache, deferred): copied into file-backed values.

The cache hit path and the put path stay ``n += 1`` on plain ints in every mode. In
multiprocess mode a scrape cannot read another worker's ints, so each worker copies what
changed into prometheus_client's file-backed values: at the end of each response (so a
request's cache calls are on file when its response is counted), at each scrape, and once a
second from a daemon thread for work outside requests (a writer's background commits).
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from multiprocessing import util
from typing import Final

_INTERVAL: Final = 1.0

_syncs: list[Callable[[], None]] = []
LOCK = threading.Lock()  # held by every sync, and by the adding of a source
_thread_pid = 0


def register(sync: Callable[[], None]) -> None:
    """Run ``sync`` (which copies deltas; called under one lock) from now on in this process."""
    with LOCK:
        first = not _syncs
        _syncs.append(sync)
    if first:
        # A recycled worker exits cleanly: copy its last changes. (atexit does not run in
        # multiprocessing's children, its finaliser does.)
        atexit.register(sync_all)
        util.Finalize(None, sync_all, exitpriority=0)
    _ensure_thread()


def sync_all() -> None:
    if not _syncs:
        return
    with LOCK:
        for sync in _syncs:
            sync()
    if _thread_pid != os.getpid():
        _ensure_thread()


def _ensure_thread() -> None:
    global _thread_pid
    with LOCK:
        if _thread_pid == os.getpid():
            return
        _thread_pid = os.getpid()  # threads do not survive fork: one per process
    threading.Thread(target=_run, name="streamboost-mp-sync", daemon=True).start()


def _run() -> None:
    stop = threading.Event()
    while not stop.wait(_INTERVAL):
        sync_all()
