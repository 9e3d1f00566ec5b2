"""streamboost under gunicorn: load ``python:streamboost_gunicorn.config`` with ``-c``."""

from ._hooks import child_exit, on_exit, on_starting, post_fork, post_worker_init

__all__: list[str] = ["child_exit", "on_exit", "on_starting", "post_fork", "post_worker_init"]
