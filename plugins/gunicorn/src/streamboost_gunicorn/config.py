"""``gunicorn -c python:streamboost_gunicorn.config -w 4 myapp.main:app``.

gunicorn reads its settings and server hooks from this module's names. ``-k`` on the command
line still overrides the worker class.
"""

from ._hooks import child_exit, on_exit, on_starting, post_fork, post_worker_init

worker_class = "uvicorn.workers.UvicornWorker"

__all__: list[str] = [
    "child_exit",
    "on_exit",
    "on_starting",
    "post_fork",
    "post_worker_init",
    "worker_class",
]
