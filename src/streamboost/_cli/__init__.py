"""The ``streamboost`` command and what only it uses: serve, demo, dashboards, loopback runs."""

from __future__ import annotations

from ._main import build_parser, main

__all__ = ["build_parser", "main"]
