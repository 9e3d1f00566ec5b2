"""The gunicorn server hooks: one metrics directory, a slot per worker, the app wrapped.

The arbiter (master) never makes a metric value: it empties the directory at start, and after
each worker's exit removes the live gauges (open streams, queue depth) of the slot the worker
held. Each worker claims its slot right after fork, before the app is loaded, so every value
it makes is file-backed and named by the slot, not the PID.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Final

ENV_DIR: Final = "PROMETHEUS_MULTIPROC_DIR"
ENV_WRAP: Final = "STREAMBOOST_GUNICORN_WRAP"

_created: list[str] = []  # the directory made here (when none was given), removed at exit


def on_starting(server: Any) -> None:
    from streamboost._export.prometheus._multiprocess import clear_directory

    directory = os.environ.get(ENV_DIR)
    if not directory:
        directory = tempfile.mkdtemp(prefix="streamboost-prometheus-")
        os.environ[ENV_DIR] = directory
        _created.append(directory)
    clear_directory(directory)  # values of a previous run would be added to this one's
    server.log.info("streamboost: %s=%s", ENV_DIR, directory)


def post_fork(server: Any, worker: Any) -> None:
    from streamboost._export.prometheus._multiprocess import install, worker_slot

    install()
    worker.log.info("streamboost: worker %s holds metrics slot %d", worker.pid, worker_slot())


def post_worker_init(worker: Any) -> None:
    """Wrap the loaded app in StreamBoost, unless it is one already (or wrapping is off)."""
    from streamboost import StreamBoost

    if os.environ.get(ENV_WRAP, "1") == "0" or isinstance(worker.wsgi, StreamBoost):
        return
    worker.wsgi = StreamBoost(worker.wsgi)


def child_exit(server: Any, worker: Any) -> None:
    from streamboost._export.prometheus._multiprocess import reap_dead_slots

    directory = os.environ.get(ENV_DIR)
    if directory and os.path.isdir(directory):
        reap_dead_slots(directory)  # the live gauges of the slot the worker left go to 0


def on_exit(server: Any) -> None:
    for directory in _created:
        shutil.rmtree(directory, ignore_errors=True)
    _created.clear()
