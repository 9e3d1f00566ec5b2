"""Multiprocess mode for the plain-int stats (cache, deferred): copied into file-backed values.

``IntMirror`` reads the same samples as the single-process ``PlainCollector`` and copies them;
this module runs every mirror's copy.

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
import weakref
from collections.abc import Callable, Iterable
from multiprocessing import util
from typing import Final, Generic, TypeVar

from prometheus_client import CollectorRegistry, Histogram

from .._spec import Family
from ._families import counter, gauge, histogram
from ._plain import Hist, Sample

S = TypeVar("S")

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


class IntMirror(Generic[S]):
    """Multiprocess twin of a ``PlainCollector``: its sources' samples copied to file values.

    Counters get what each source added since the last copy; gauges are set to the sum over
    live sources (a label set whose sources are gone reads 0, not its last value).
    Histogram samples are skipped: their file-backed histograms (``histogram(family)``) are
    observed directly. Every counter's label sets are exported from the moment a source is
    added, at 0. Its owner passes ``sync`` to ``register``.
    """

    def __init__(
        self,
        families: tuple[Family, ...],
        samples: Callable[[S], Iterable[Sample]],
        registry: CollectorRegistry,
    ) -> None:
        self._samples = samples
        self._counters = {id(f): counter(f, registry) for f in families if f.kind == "counter"}
        self._gauges = {id(f): gauge(f, registry) for f in families if f.kind == "gauge"}
        self._histograms = {
            id(f): histogram(f, registry) for f in families if f.kind == "histogram"
        }
        self._copied: weakref.WeakKeyDictionary[S, dict[tuple[int, tuple[str, ...]], float]] = (
            weakref.WeakKeyDictionary()
        )
        self._gauge_keys: set[tuple[int, tuple[str, ...]]] = set()

    def histogram(self, family: Family) -> Histogram:
        return self._histograms[id(family)]

    def add(self, source: S) -> None:
        gauge_keys = []
        for family, labels, _value in self._samples(source):
            if id(family) in self._counters:
                self._counters[id(family)].labels(*labels)
            elif id(family) in self._gauges:
                gauge_keys.append((id(family), labels))
        with LOCK:
            self._copied[source] = {}
            self._gauge_keys.update(gauge_keys)

    def sync(self) -> None:
        """Called under ``LOCK`` (``sync_all``)."""
        gauges: dict[tuple[int, tuple[str, ...]], float] = dict.fromkeys(self._gauge_keys, 0)
        for source, copied in list(self._copied.items()):
            for family, labels, value in self._samples(source):
                if isinstance(value, Hist):
                    continue
                key = (id(family), labels)
                if id(family) in self._gauges:
                    gauges[key] = gauges.get(key, 0) + value
                    continue
                old = copied.get(key, 0)
                if value > old:
                    self._counters[id(family)].labels(*labels).inc(value - old)
                    copied[key] = value
        for (family_id, labels), total in gauges.items():
            self._gauges[family_id].labels(*labels).set(total)
        self._gauge_keys.update(gauges)
